package deploytest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/system/config"
)

// Neither kubeconform nor a kubectl that validates without an API server
// runs offline here, so these structural checks are the manifests' test.

var k8sDir = filepath.Join(deployDir, "k8s")

// k8sObject is one parsed manifest.
type k8sObject struct {
	file string
	obj  map[string]any
}

func (o k8sObject) kind() string { return str(o.obj, "kind") }
func (o k8sObject) name() string { return str(o.obj, "metadata", "name") }

// k8sObjects parses every manifest in deploy/k8s, keyed by "Kind/name".
func k8sObjects(t *testing.T) map[string]k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/k8s: %v", err)
	}
	out := map[string]k8sObject{}
	for _, f := range files {
		for i, doc := range loadYAML(t, f) {
			m, ok := doc.(map[string]any)
			if !ok {
				t.Fatalf("%s: document %d is a %T, want a mapping", f, i, doc)
			}
			o := k8sObject{file: filepath.Base(f), obj: m}
			if o.kind() == "" || str(m, "apiVersion") == "" {
				t.Errorf("%s: document %d has no apiVersion or kind", f, i)
				continue
			}
			if o.kind() == "Kustomization" {
				out["Kustomization/"] = o
				continue
			}
			if o.name() == "" {
				t.Errorf("%s: %s without metadata.name", f, o.kind())
			}
			if ns := str(m, "metadata", "namespace"); ns != "" {
				t.Errorf("%s: %s/%s sets namespace %s; the manifests are namespace-agnostic", f, o.kind(), o.name(), ns)
			}
			key := o.kind() + "/" + o.name()
			if prev, dup := out[key]; dup {
				t.Errorf("%s is defined in %s and %s", key, prev.file, o.file)
			}
			out[key] = o
		}
	}
	return out
}

// one returns the only object of kind, failing when there is not exactly
// one.
func one(t *testing.T, objs map[string]k8sObject, kind string) k8sObject {
	t.Helper()
	var found []k8sObject
	for _, o := range objs {
		if o.kind() == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("deploy/k8s has %d %s objects, want 1", len(found), kind)
	}
	return found[0]
}

// selects reports whether the labels selector all appear in labels.
func selects(selector, labels map[string]any) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// k8sNodeEnv returns the environment of the StatefulSet's bridge
// container: its env (downward API values replaced by examples), and the
// keys of the ConfigMap and Secret it takes with envFrom.
func k8sNodeEnv(t *testing.T) map[string]string {
	t.Helper()
	objs := k8sObjects(t)
	c := bridgeContainer(t, one(t, objs, "StatefulSet"))
	env := map[string]string{}
	for _, from := range listAt(c, "envFrom") {
		switch {
		case str(from, "configMapRef", "name") != "":
			cm, ok := objs["ConfigMap/"+str(from, "configMapRef", "name")]
			if !ok {
				t.Fatalf("envFrom names the ConfigMap %s, which deploy/k8s does not define", str(from, "configMapRef", "name"))
			}
			for k := range mapAt(cm.obj, "data") {
				env[k] = scalar(cm.obj, "data", k)
			}
		case str(from, "secretRef", "name") != "":
			sec, ok := objs["Secret/"+str(from, "secretRef", "name")]
			if !ok {
				t.Fatalf("envFrom names the Secret %s, which deploy/k8s does not define (secret.example.yaml)", str(from, "secretRef", "name"))
			}
			for k := range mapAt(sec.obj, "stringData") {
				env[k] = scalar(sec.obj, "stringData", k)
			}
		}
	}
	examples := map[string]string{"metadata.name": "xmtp-bridge-0", "status.podIP": "10.1.2.3"}
	for _, e := range listAt(c, "env") {
		name := str(e, "name")
		if fp := str(e, "valueFrom", "fieldRef", "fieldPath"); fp != "" {
			env[name] = examples[fp]
			continue
		}
		env[name] = scalar(e, "value")
	}
	return env
}

// bridgeContainer returns the StatefulSet's container named bridge.
func bridgeContainer(t *testing.T, sts k8sObject) map[string]any {
	t.Helper()
	for _, c := range listAt(sts.obj, "spec", "template", "spec", "containers") {
		if str(c, "name") == "bridge" {
			return c.(map[string]any)
		}
	}
	t.Fatalf("StatefulSet %s has no container named bridge", sts.name())
	return nil
}

// containerPort returns the number of the container port called name.
func containerPort(c map[string]any, name string) string {
	for _, p := range listAt(c, "ports") {
		if str(p, "name") == name {
			return scalar(p, "containerPort")
		}
	}
	return ""
}

func TestKubernetesManifests(t *testing.T) {
	objs := k8sObjects(t)

	// kustomization.yaml lists every manifest but the Secret example.
	kust, ok := objs["Kustomization/"]
	if !ok {
		t.Fatal("deploy/k8s has no kustomization.yaml")
	}
	files, _ := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	var want []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && b != "secret.example.yaml" {
			want = append(want, b)
		}
	}
	got := stringList(kust.obj, "resources")
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("kustomization.yaml resources %v, want %v", got, want)
	}

	sts := one(t, objs, "StatefulSet")
	pod := mapAt(sts.obj, "spec", "template", "spec")
	podLabels := mapAt(sts.obj, "spec", "template", "metadata", "labels")
	c := bridgeContainer(t, sts)
	env := k8sNodeEnv(t)

	// RBAC: exactly what protoactor's Kubernetes provider calls: get its
	// own pod, patch its labels, watch (and list) the cluster's pods.
	sa := one(t, objs, "ServiceAccount")
	if get(sa.obj, "automountServiceAccountToken") == false {
		t.Errorf("ServiceAccount %s does not mount its token; the provider needs it", sa.name())
	}
	role := one(t, objs, "Role")
	var verbs []string
	for _, r := range listAt(role.obj, "rules") {
		if !slices.Equal(stringList(r, "apiGroups"), []string{""}) || !slices.Equal(stringList(r, "resources"), []string{"pods"}) {
			t.Errorf("Role %s has a rule beyond core pods: %v", role.name(), r)
			continue
		}
		verbs = append(verbs, stringList(r, "verbs")...)
	}
	slices.Sort(verbs)
	if want := []string{"get", "list", "patch", "watch"}; !slices.Equal(verbs, want) {
		t.Errorf("Role %s grants %v on pods, want %v", role.name(), verbs, want)
	}
	rb := one(t, objs, "RoleBinding")
	if str(rb.obj, "roleRef", "kind") != "Role" || str(rb.obj, "roleRef", "name") != role.name() {
		t.Errorf("RoleBinding %s refers to %s/%s, want Role/%s", rb.name(), str(rb.obj, "roleRef", "kind"), str(rb.obj, "roleRef", "name"), role.name())
	}
	subjects := listAt(rb.obj, "subjects")
	if len(subjects) != 1 || str(subjects[0], "kind") != "ServiceAccount" || str(subjects[0], "name") != sa.name() {
		t.Errorf("RoleBinding %s subjects %v, want the ServiceAccount %s", rb.name(), subjects, sa.name())
	}
	if str(pod, "serviceAccountName") != sa.name() {
		t.Errorf("StatefulSet runs as %q, want the ServiceAccount %s", str(pod, "serviceAccountName"), sa.name())
	}
	if get(pod, "automountServiceAccountToken") == false {
		t.Errorf("the pods do not mount the service account token; the provider needs it and the namespace file")
	}
	// The provider finds its own pod by os.Hostname(): the pod name.
	if get(pod, "hostname") != nil || get(pod, "setHostnameAsFQDN") == true {
		t.Errorf("the pod spec changes the host name; protoactor's provider looks its pod up by host name")
	}

	// Selectors match the pods.
	if !selects(mapAt(sts.obj, "spec", "selector", "matchLabels"), podLabels) {
		t.Errorf("StatefulSet selector %v does not match its pod labels %v", mapAt(sts.obj, "spec", "selector", "matchLabels"), podLabels)
	}
	pdb := one(t, objs, "PodDisruptionBudget")
	if !selects(mapAt(pdb.obj, "spec", "selector", "matchLabels"), podLabels) {
		t.Errorf("PodDisruptionBudget selector %v does not match the pod labels %v", mapAt(pdb.obj, "spec", "selector", "matchLabels"), podLabels)
	}
	if scalar(pdb.obj, "spec", "maxUnavailable") != "1" {
		t.Errorf("PodDisruptionBudget maxUnavailable %q, want 1", scalar(pdb.obj, "spec", "maxUnavailable"))
	}
	services := map[string]k8sObject{}
	for _, o := range objs {
		if o.kind() != "Service" {
			continue
		}
		services[o.name()] = o
		if !selects(mapAt(o.obj, "spec", "selector"), podLabels) {
			t.Errorf("Service %s selector %v does not match the pod labels %v", o.name(), mapAt(o.obj, "spec", "selector"), podLabels)
		}
		for _, p := range listAt(o.obj, "spec", "ports") {
			if tp := scalar(p, "targetPort"); containerPort(c, tp) == "" && !slices.ContainsFunc(listAt(c, "ports"), func(cp any) bool { return scalar(cp, "containerPort") == tp }) {
				t.Errorf("Service %s targets port %s, which the bridge container does not have", o.name(), tp)
			}
		}
	}
	headless, ok := services[str(sts.obj, "spec", "serviceName")]
	if !ok || scalar(headless.obj, "spec", "clusterIP") != "None" {
		t.Errorf("StatefulSet serviceName %q is not a headless Service of deploy/k8s", str(sts.obj, "spec", "serviceName"))
	}

	// The cluster settings the provider needs.
	if env["BRIDGE_CLUSTER_PROVIDER"] != "kubernetes" {
		t.Errorf("BRIDGE_CLUSTER_PROVIDER=%q, want kubernetes", env["BRIDGE_CLUSTER_PROVIDER"])
	}
	if env["BRIDGE_CLUSTER_HOST"] != "0.0.0.0" {
		t.Errorf("BRIDGE_CLUSTER_HOST=%q, want 0.0.0.0", env["BRIDGE_CLUSTER_HOST"])
	}
	if p := env["BRIDGE_CLUSTER_PORT"]; p == "" || p == "0" || p != containerPort(c, "cluster") {
		t.Errorf("BRIDGE_CLUSTER_PORT=%q, want a fixed port equal to the container port named cluster (%s)", p, containerPort(c, "cluster"))
	}
	fieldRefs := map[string]string{}
	for _, e := range listAt(c, "env") {
		fieldRefs[str(e, "name")] = str(e, "valueFrom", "fieldRef", "fieldPath")
	}
	if fieldRefs["BRIDGE_CLUSTER_ADVERTISED_HOST"] != "status.podIP" {
		t.Errorf("BRIDGE_CLUSTER_ADVERTISED_HOST comes from %q, want the pod IP (status.podIP), where the provider reports members",
			fieldRefs["BRIDGE_CLUSTER_ADVERTISED_HOST"])
	}
	if fieldRefs["BRIDGE_NODE_ID"] != "metadata.name" {
		t.Errorf("BRIDGE_NODE_ID comes from %q, want the pod name (metadata.name)", fieldRefs["BRIDGE_NODE_ID"])
	}
	if got := strings.Join(stringList(c, "args"), " "); got != "node" {
		t.Errorf("the bridge container runs %q, want node", got)
	}
	httpPort := containerPort(c, "http")
	if _, p, _ := strings.Cut(env["BRIDGE_HTTP_ADDR"], ":"); p != httpPort || !strings.HasPrefix(env["BRIDGE_HTTP_ADDR"], "0.0.0.0:") {
		t.Errorf("BRIDGE_HTTP_ADDR=%q, want 0.0.0.0 and the container port named http (%s)", env["BRIDGE_HTTP_ADDR"], httpPort)
	}

	// Secrets come from the Secret only.
	for _, o := range objs {
		if o.kind() != "ConfigMap" {
			continue
		}
		for k := range mapAt(o.obj, "data") {
			if v, ok := config.LookupVar(k); ok && v.Secret {
				t.Errorf("ConfigMap %s holds the secret %s; put it in the Secret", o.name(), k)
			}
		}
	}
	for _, e := range listAt(c, "env") {
		if v, ok := config.LookupVar(str(e, "name")); ok && v.Secret {
			t.Errorf("the bridge container sets the secret %s in env; take it from the Secret", v.Name)
		}
	}

	// Probes.
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz", "startupProbe": "/healthz"} {
		if got := str(c, probe, "httpGet", "path"); got != path {
			t.Errorf("%s path %q, want %s", probe, got, path)
		}
		if port := scalar(c, probe, "httpGet", "port"); port != "http" && port != httpPort {
			t.Errorf("%s port %q, want the http port", probe, port)
		}
	}

	// preStop drains the node with the binary itself (no shell in the
	// image), and the grace period covers the drain and the shutdown.
	pre := stringList(c, "lifecycle", "preStop", "exec", "command")
	if len(pre) < 2 || pre[0] != "/bridge" || pre[1] != "drain" {
		t.Errorf("preStop runs %q, want /bridge drain ...", pre)
	}
	for _, a := range pre {
		if strings.Contains(a, "$(") || strings.Contains(a, "${") || a == "sh" || a == "/bin/sh" {
			t.Errorf("preStop argument %q needs a shell or $(VAR) expansion, which exec hooks do not have", a)
		}
		if api, ok := strings.CutPrefix(a, "--api="); ok && api != "http://127.0.0.1:"+httpPort {
			t.Errorf("preStop --api=%s, want http://127.0.0.1:%s", api, httpPort)
		}
	}
	shutdown, err := time.ParseDuration(env["BRIDGE_SHUTDOWN_TIMEOUT"])
	if err != nil {
		t.Errorf("BRIDGE_SHUTDOWN_TIMEOUT=%q: %v", env["BRIDGE_SHUTDOWN_TIMEOUT"], err)
	}
	drain := 2 * time.Minute // bridge drain's default --timeout
	for _, a := range pre {
		if v, ok := strings.CutPrefix(a, "--timeout="); ok {
			if drain, err = time.ParseDuration(v); err != nil {
				t.Errorf("preStop %s: %v", a, err)
			}
		}
	}
	grace, _ := strconv.Atoi(scalar(pod, "terminationGracePeriodSeconds"))
	if time.Duration(grace)*time.Second <= drain+shutdown {
		t.Errorf("terminationGracePeriodSeconds %d must exceed the drain's timeout (%s) plus BRIDGE_SHUTDOWN_TIMEOUT (%s)", grace, drain, shutdown)
	}

	// Runs as the image's non-root user.
	dockerfile := string(mustRead(t, filepath.Join(repoRoot, "Dockerfile")))
	uid := regexp.MustCompile(`(?m)^USER ([0-9]+)`).FindAllStringSubmatch(dockerfile, -1)
	if get(pod, "securityContext", "runAsNonRoot") != true {
		t.Errorf("the pods do not set runAsNonRoot")
	}
	if len(uid) == 0 || scalar(pod, "securityContext", "runAsUser") != uid[len(uid)-1][1] {
		t.Errorf("runAsUser %q, want the Dockerfile's USER", scalar(pod, "securityContext", "runAsUser"))
	}

	// The image is the compose file's default image.
	compose := string(mustRead(t, composeFile))
	if img := str(c, "image"); !strings.Contains(compose, ":-"+img+"}") || strings.HasSuffix(img, ":latest") {
		t.Errorf("the bridge container's image %q is not the pinned image of compose.yaml", img)
	}

	// The Ingress sends its hosts to the HTTP Service, with a certificate.
	ing := one(t, objs, "Ingress")
	if str(ing.obj, "metadata", "annotations", "cert-manager.io/cluster-issuer") == "" && str(ing.obj, "metadata", "annotations", "cert-manager.io/issuer") == "" {
		t.Errorf("Ingress %s has no cert-manager issuer annotation", ing.name())
	}
	tlsHosts := map[string]bool{}
	for _, tl := range listAt(ing.obj, "spec", "tls") {
		if str(tl, "secretName") == "" {
			t.Errorf("Ingress %s has a tls entry without secretName", ing.name())
		}
		for _, h := range stringList(tl, "hosts") {
			tlsHosts[h] = true
		}
	}
	for _, r := range listAt(ing.obj, "spec", "rules") {
		if !tlsHosts[str(r, "host")] {
			t.Errorf("Ingress host %q has no TLS", str(r, "host"))
		}
		for _, p := range listAt(r, "http", "paths") {
			svc, ok := services[str(p, "backend", "service", "name")]
			if !ok {
				t.Errorf("Ingress backend %q is not a Service of deploy/k8s", str(p, "backend", "service", "name"))
				continue
			}
			port := str(p, "backend", "service", "port", "name")
			if !slices.ContainsFunc(listAt(svc.obj, "spec", "ports"), func(sp any) bool { return str(sp, "name") == port }) {
				t.Errorf("Ingress backend port %q is not a port of Service %s", port, svc.name())
			}
		}
	}
	if _, err := os.Stat(filepath.Join(k8sDir, "secret.example.yaml")); err != nil {
		t.Errorf("deploy/k8s/secret.example.yaml: %v", err)
	}
}
