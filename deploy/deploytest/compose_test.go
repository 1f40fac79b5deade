package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/system/config"
)

var (
	composeFile    = filepath.Join(deployDir, "compose", "compose.yaml")
	composeEnvFile = filepath.Join(deployDir, "env", "compose.env.example")
)

// composeEnvVars returns the example env file's values, the input of the
// compose file's ${...} interpolation.
func composeEnvVars(t *testing.T) map[string]string {
	t.Helper()
	entries, _, err := parseEnvFile(mustRead(t, composeEnvFile))
	if err != nil {
		t.Fatalf("deploy/env/compose.env.example: %v", err)
	}
	vars := map[string]string{}
	for _, e := range entries {
		vars[e.name] = e.value
	}
	return vars
}

// composeService is a service of the compose file with its environment
// interpolated from the example env file.
type composeService struct {
	name string
	def  map[string]any
	env  map[string]string // interpolated
	raw  map[string]string // as written
}

// composeServices parses the compose file and returns its services.
func composeServices(t *testing.T) map[string]composeService {
	t.Helper()
	doc := loadYAMLMap(t, composeFile)
	vars := composeEnvVars(t)
	out := map[string]composeService{}
	for name, def := range mapAt(doc, "services") {
		m, ok := def.(map[string]any)
		if !ok {
			t.Fatalf("compose service %s is not a mapping", name)
		}
		s := composeService{name: name, def: m, env: map[string]string{}, raw: map[string]string{}}
		switch e := m["environment"].(type) {
		case nil:
		case map[string]any:
			for k := range e {
				s.raw[k] = scalar(e, k)
			}
		case []any:
			for i := range e {
				k, v, _ := strings.Cut(scalar(e, i), "=")
				s.raw[k] = v
			}
		default:
			t.Fatalf("compose service %s: environment is a %T", name, e)
		}
		for k, v := range s.raw {
			iv, err := interpolate(v, vars)
			if err != nil {
				t.Errorf("compose service %s: %s: %v", name, k, err)
			}
			s.env[k] = iv
		}
		out[name] = s
	}
	return out
}

// composeNodeServices returns the compose services that run `bridge node`.
func composeNodeServices(t *testing.T) []composeService {
	t.Helper()
	var out []composeService
	for _, s := range composeServices(t) {
		if strings.Join(stringList(s.def, "command"), " ") == "node" {
			out = append(out, s)
		}
	}
	return out
}

// TestComposeConfig validates the compose file with the Compose tool
// itself (`config -q` needs no docker engine): the docker compose plugin
// when it is installed, else Debian's docker-compose, which
// scripts/ensure-tools.sh installs. Without either it fails.
func TestComposeConfig(t *testing.T) {
	args := []string{"-f", composeFile, "--env-file", composeEnvFile, "config", "-q"}
	if docker, err := exec.LookPath("docker"); err == nil && exec.Command(docker, "compose", "version").Run() == nil {
		composeCheck(t, docker, append([]string{"compose"}, args...)...)
		return
	}
	v1, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatalf("neither the docker compose plugin nor docker-compose is installed: run scripts/ensure-tools.sh docker-compose")
	}
	// Compose v1 predates the top-level name key of the Compose
	// specification; it gets a copy without it, the name given with -p and
	// paths resolved from the compose directory as before.
	src := mustRead(t, composeFile)
	name := regexp.MustCompile(`(?m)^name:\s*(\S+)\s*$`)
	m := name.FindSubmatch(src)
	if m == nil {
		t.Fatalf("%s has no top-level name", composeFile)
	}
	copied := filepath.Join(t.TempDir(), "compose.yaml")
	if err := os.WriteFile(copied, name.ReplaceAll(src, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	composeCheck(t, v1, "-p", string(m[1]), "--project-directory", filepath.Dir(composeFile),
		"-f", copied, "--env-file", composeEnvFile, "config", "-q")
}

func composeCheck(t *testing.T, tool string, args ...string) {
	t.Helper()
	if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(tool), strings.Join(args, " "), err, out)
	}
}

func TestComposeStructure(t *testing.T) {
	services := composeServices(t)
	doc := loadYAMLMap(t, composeFile)
	vars := composeEnvVars(t)
	for _, want := range []string{"postgres", "etcd", "migrate", "xmtp-node", "bridge-1", "bridge-2", "bridge-3",
		"nginx-proxy", "acme-companion", "prometheus", "alertmanager"} {
		if _, ok := services[want]; !ok {
			t.Errorf("compose has no %s service", want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	for name, s := range services {
		// Pinned images.
		image, err := interpolate(str(s.def, "image"), vars)
		if err != nil || image == "" {
			t.Errorf("service %s: image %q: %v", name, str(s.def, "image"), err)
		} else if i := strings.LastIndex(image, ":"); i < 0 || strings.Contains(image[i:], "/") || image[i+1:] == "latest" {
			t.Errorf("service %s: image %s is not pinned to a version tag", name, image)
		}
		// depends_on targets exist, and service_healthy ones have a check.
		for dep, cond := range mapAt(s.def, "depends_on") {
			target, ok := services[dep]
			if !ok {
				t.Errorf("service %s depends on %s, which does not exist", name, dep)
				continue
			}
			if str(cond, "condition") == "service_healthy" && len(listAt(target.def, "healthcheck", "test")) == 0 {
				t.Errorf("service %s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
			}
		}
		for _, dep := range stringList(s.def, "depends_on") {
			if _, ok := services[dep]; !ok {
				t.Errorf("service %s depends on %s, which does not exist", name, dep)
			}
		}
		// No literal secret: every secret the node reads, and the
		// Postgres password, come from the env file.
		for k, v := range s.raw {
			secret := k == "POSTGRES_PASSWORD"
			if cv, ok := config.LookupVar(k); ok && cv.Secret {
				secret = true
			}
			if secret && !strings.Contains(v, "${") {
				t.Errorf("service %s sets the secret %s literally; take it from the env file with ${...}", name, k)
			}
		}
		// Named volumes are declared; bind-mounted files exist.
		for _, vol := range stringList(s.def, "volumes") {
			src, _, _ := strings.Cut(vol, ":")
			switch {
			case strings.HasPrefix(src, "."):
				if _, err := os.Stat(filepath.Join(deployDir, "compose", src)); err != nil {
					t.Errorf("service %s mounts %s, which does not exist: %v", name, src, err)
				}
			case strings.HasPrefix(src, "/"):
			default:
				if _, ok := mapAt(doc, "volumes")[src]; !ok {
					t.Errorf("service %s uses the volume %s, which is not declared", name, src)
				}
			}
		}
	}

	for _, name := range []string{"postgres", "etcd"} {
		if len(listAt(services[name].def, "healthcheck", "test")) == 0 {
			t.Errorf("service %s has no healthcheck", name)
		}
	}
	migrate := services["migrate"]
	if got := strings.Join(stringList(migrate.def, "command"), " "); got != "migrate" {
		t.Errorf("service migrate runs %q, want migrate", got)
	}
	if str(migrate.def, "depends_on", "postgres", "condition") != "service_healthy" {
		t.Errorf("service migrate does not wait for postgres to be healthy")
	}
	if scalar(migrate.def, "restart") != "no" {
		t.Errorf("service migrate restarts (%q); it is a one-shot job", scalar(migrate.def, "restart"))
	}
	xmtp := services["xmtp-node"]
	if got := strings.Join(stringList(xmtp.def, "command"), " "); got != "xmtp-node" {
		t.Errorf("service xmtp-node runs %q, want xmtp-node", got)
	}
	_, xmtpPort, _ := strings.Cut(xmtp.env["BRIDGE_XMTP_NODE_GRPC_ADDR"], ":")

	nodes := composeNodeServices(t)
	if len(nodes) != 3 {
		t.Fatalf("compose has %d services running `bridge node`, want 3", len(nodes))
	}
	ids := map[string]bool{}
	for _, s := range nodes {
		e := s.env
		if e["BRIDGE_CLUSTER_PROVIDER"] != "etcd" {
			t.Errorf("service %s: BRIDGE_CLUSTER_PROVIDER=%q, want etcd", s.name, e["BRIDGE_CLUSTER_PROVIDER"])
		}
		if e["BRIDGE_CLUSTER_ADVERTISED_HOST"] != s.name {
			t.Errorf("service %s: BRIDGE_CLUSTER_ADVERTISED_HOST=%q, want its service name", s.name, e["BRIDGE_CLUSTER_ADVERTISED_HOST"])
		}
		if p := e["BRIDGE_CLUSTER_PORT"]; p == "" || p == "0" {
			t.Errorf("service %s: BRIDGE_CLUSTER_PORT=%q, want a fixed port", s.name, p)
		}
		if ids[e["BRIDGE_NODE_ID"]] {
			t.Errorf("service %s: BRIDGE_NODE_ID=%q is used twice", s.name, e["BRIDGE_NODE_ID"])
		}
		ids[e["BRIDGE_NODE_ID"]] = true
		for _, ep := range strings.Split(e["BRIDGE_ETCD_ENDPOINTS"], ",") {
			if host, _, _ := strings.Cut(ep, ":"); host != "etcd" {
				t.Errorf("service %s: etcd endpoint %q is not the etcd service", s.name, ep)
			}
		}
		if e["BRIDGE_XMTP_NODE"] != "xmtp-node:"+xmtpPort {
			t.Errorf("service %s: BRIDGE_XMTP_NODE=%q, want the xmtp-node service's gRPC address xmtp-node:%s", s.name, e["BRIDGE_XMTP_NODE"], xmtpPort)
		}
		_, httpPort, _ := strings.Cut(e["BRIDGE_HTTP_ADDR"], ":")
		if host, _, _ := strings.Cut(e["BRIDGE_HTTP_ADDR"], ":"); host != "0.0.0.0" {
			t.Errorf("service %s: BRIDGE_HTTP_ADDR=%q must listen on 0.0.0.0 for nginx-proxy and Prometheus", s.name, e["BRIDGE_HTTP_ADDR"])
		}
		if e["VIRTUAL_PORT"] != httpPort {
			t.Errorf("service %s: VIRTUAL_PORT=%q, want the API port %s", s.name, e["VIRTUAL_PORT"], httpPort)
		}
		if e["VIRTUAL_HOST"] == "" || e["LETSENCRYPT_HOST"] != e["VIRTUAL_HOST"] {
			t.Errorf("service %s: VIRTUAL_HOST=%q LETSENCRYPT_HOST=%q, want the same public name", s.name, e["VIRTUAL_HOST"], e["LETSENCRYPT_HOST"])
		}
		if e["BRIDGE_PROXY_HEADER"] != "X-Real-IP" {
			t.Errorf("service %s: BRIDGE_PROXY_HEADER=%q, want X-Real-IP (set by nginx-proxy)", s.name, e["BRIDGE_PROXY_HEADER"])
		}
		if str(s.def, "depends_on", "migrate", "condition") != "service_completed_successfully" {
			t.Errorf("service %s does not wait for migrate to complete", s.name)
		}
		if str(s.def, "depends_on", "etcd", "condition") != "service_healthy" {
			t.Errorf("service %s does not wait for etcd to be healthy", s.name)
		}
		grace, err1 := time.ParseDuration(scalar(s.def, "stop_grace_period"))
		shutdown, err2 := time.ParseDuration(e["BRIDGE_SHUTDOWN_TIMEOUT"])
		if err1 != nil || err2 != nil || grace <= shutdown {
			t.Errorf("service %s: stop_grace_period %q must be longer than BRIDGE_SHUTDOWN_TIMEOUT %q",
				s.name, scalar(s.def, "stop_grace_period"), e["BRIDGE_SHUTDOWN_TIMEOUT"])
		}
	}

	proxy := services["nginx-proxy"]
	ports := strings.Join(stringList(proxy.def, "ports"), " ")
	for _, p := range []string{"80:80", "443:443"} {
		if !strings.Contains(" "+ports+" ", " "+p+" ") {
			t.Errorf("nginx-proxy does not publish %s (ports %q)", p, ports)
		}
	}
	if !strings.Contains(strings.Join(stringList(proxy.def, "volumes"), " "), "docker.sock:/tmp/docker.sock") {
		t.Errorf("nginx-proxy does not mount the Docker socket at /tmp/docker.sock")
	}
	acme := services["acme-companion"]
	if got := stringList(acme.def, "volumes_from"); len(got) != 1 || got[0] != "nginx-proxy" {
		t.Errorf("acme-companion volumes_from %q, want nginx-proxy", got)
	}
	if !regexp.MustCompile(`:/etc/acme\.sh\b`).MatchString(strings.Join(stringList(acme.def, "volumes"), " ")) {
		t.Errorf("acme-companion keeps no /etc/acme.sh volume: its account and certificates would be lost")
	}
	if acme.env["DEFAULT_EMAIL"] == "" {
		t.Errorf("acme-companion has no DEFAULT_EMAIL")
	}
	prom := strings.Join(stringList(services["prometheus"].def, "command"), " ")
	if !strings.Contains(prom, "--config.file=/etc/prometheus/prometheus.yml") {
		t.Errorf("prometheus does not load /etc/prometheus/prometheus.yml: %q", prom)
	}
	am := strings.Join(stringList(services["alertmanager"].def, "command"), " ")
	if !strings.Contains(am, "--config.file=/etc/alertmanager/alertmanager.yml") {
		t.Errorf("alertmanager does not load /etc/alertmanager/alertmanager.yml: %q", am)
	}
}
