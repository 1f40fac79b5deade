package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/system/config"
)

// bridgeVar matches the names of the node's variables in deploy/ files.
var bridgeVar = regexp.MustCompile(`\b(BRIDGE_[A-Z0-9_]*[A-Z0-9]|DATABASE_URL)\b`)

// deployFiles are the files whose variables must be ones `bridge env`
// documents: the compose stack, the Kubernetes manifests, the env files and
// the Dockerfile. The nginx site and the ACME script set none.
func deployFiles(t *testing.T) []string {
	t.Helper()
	files := []string{filepath.Join(repoRoot, "Dockerfile")}
	for _, dir := range []string{"compose", "k8s", "env"} {
		entries, err := os.ReadDir(filepath.Join(deployDir, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !e.IsDir() {
				files = append(files, filepath.Join(deployDir, dir, e.Name()))
			}
		}
	}
	return files
}

// expectedClusterVars are the cluster and proxy variables the deployments
// use. Until the node documents them, TestDeployVariablesAreDocumented
// names the ones missing.
var expectedClusterVars = []string{
	"BRIDGE_CLUSTER_PROVIDER", "BRIDGE_CLUSTER_NAME", "BRIDGE_CLUSTER_HOST", "BRIDGE_CLUSTER_PORT",
	"BRIDGE_CLUSTER_ADVERTISED_HOST", "BRIDGE_CLUSTER_PROVIDER_PORT", "BRIDGE_CLUSTER_PEERS",
	"BRIDGE_ETCD_ENDPOINTS", "BRIDGE_ETCD_PREFIX", "BRIDGE_PROXY_HEADER", "BRIDGE_TRUSTED_PROXIES",
}

// TestDeployVariablesAreDocumented: every BRIDGE_* or DATABASE_URL name
// written anywhere in the deployments (settings, interpolations, comments)
// is a variable of config.Vars, the table `bridge env` prints.
func TestDeployVariablesAreDocumented(t *testing.T) {
	where := map[string][]string{}
	for _, f := range deployFiles(t) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(repoRoot, f)
		for _, name := range bridgeVar.FindAllString(string(raw), -1) {
			if w := where[name]; len(w) == 0 || w[len(w)-1] != rel {
				where[name] = append(where[name], rel)
			}
		}
	}
	if len(where) < 10 {
		t.Fatalf("found only %d variables in deploy/: the scan is broken", len(where))
	}
	var unknown []string
	for name, files := range where {
		if _, ok := config.LookupVar(name); !ok {
			unknown = append(unknown, name+" (in "+strings.Join(files, ", ")+")")
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		var notYet []string
		for _, n := range expectedClusterVars {
			if _, ok := config.LookupVar(n); !ok {
				notYet = append(notYet, n)
			}
		}
		t.Errorf("deploy/ uses %d variables that `bridge env` does not document (system/config/vars.go):\n  %s\n"+
			"of the cluster and proxy variables the deployments expect, these are not in config.Vars yet: %s",
			len(unknown), strings.Join(unknown, "\n  "), strings.Join(notYet, ", "))
	}
}

// nodeDeployment is the environment one deployment gives `bridge node`.
type nodeDeployment struct {
	name string
	env  map[string]string // values as the node would see them
}

// requiredForNode returns the variables config.Vars marks required for
// node mode in an environment env ("node unless X" is required unless X
// is true there).
func requiredForNode(env map[string]string) []string {
	var out []string
	for _, v := range config.Vars {
		for _, mode := range strings.Split(v.Required, ",") {
			mode = strings.TrimSpace(mode)
			if mode == string(config.ModeNode) {
				out = append(out, v.Name)
				break
			}
			if cond, ok := strings.CutPrefix(mode, string(config.ModeNode)+" unless "); ok {
				if !strings.EqualFold(env[strings.TrimSpace(cond)], "true") {
					out = append(out, v.Name)
				}
				break
			}
		}
	}
	return out
}

// nodeDeployments collects the environment of every bridge node the
// deployments define: each compose bridge service, the Kubernetes
// StatefulSet and the by-hand env file.
func nodeDeployments(t *testing.T) []nodeDeployment {
	t.Helper()
	var out []nodeDeployment
	for _, svc := range composeNodeServices(t) {
		out = append(out, nodeDeployment{name: "compose service " + svc.name, env: svc.env})
	}
	out = append(out, nodeDeployment{name: "k8s StatefulSet", env: k8sNodeEnv(t)})
	entries, _, err := parseEnvFile(mustRead(t, filepath.Join(deployDir, "env", "node.env.example")))
	if err != nil {
		t.Fatalf("deploy/env/node.env.example: %v", err)
	}
	env := map[string]string{}
	for _, e := range entries {
		env[e.name] = e.value
	}
	out = append(out, nodeDeployment{name: "deploy/env/node.env.example", env: env})
	return out
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestDeploymentsSetRequiredVariables: every variable a node requires is
// set in every deployment of a node.
func TestDeploymentsSetRequiredVariables(t *testing.T) {
	deps := nodeDeployments(t)
	if len(deps) != 5 {
		t.Fatalf("found %d node deployments, want 3 compose services, the StatefulSet and node.env.example", len(deps))
	}
	for _, d := range deps {
		for _, name := range requiredForNode(d.env) {
			if strings.TrimSpace(d.env[name]) == "" {
				t.Errorf("%s does not set %s, which `bridge node` requires", d.name, name)
			}
		}
	}
}

// TestDeploymentsPassCheckConfig runs `bridge check-config node` with the
// environment of every deployment, its placeholder secrets replaced by the
// documented examples: every value the deployments set parses.
func TestDeploymentsPassCheckConfig(t *testing.T) {
	for _, d := range nodeDeployments(t) {
		env := []string{"PATH=" + os.Getenv("PATH")}
		for name, value := range d.env {
			if v, ok := config.LookupVar(name); ok && v.Secret {
				value = v.Example
			}
			env = append(env, name+"="+value)
		}
		cmd := exec.Command(testkit.BuildBridge(t, dockerBuild), "check-config", "node")
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: bridge check-config node: %v\n%s", d.name, err, out)
		}
	}
}
