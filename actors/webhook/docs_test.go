package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docSnippet returns the code block after the marker <!-- verify:lang -->
// in docs/webhooks.md.
func docSnippet(t *testing.T, lang string) string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/webhooks.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- verify:" + lang + " -->\\s*```[a-z]+\\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatalf("docs/webhooks.md has no %s verification snippet", lang)
	}
	return string(m[1])
}

// TestDocumentedVerifiersAcceptARealDelivery runs the Go, JavaScript and
// Python verification snippets of docs/webhooks.md against a delivery the
// Deliverer really sent (signed with two secrets, as during a rotation),
// and checks that each accepts it and refuses it with one byte of the body
// changed or with another secret.
func TestDocumentedVerifiersAcceptARealDelivery(t *testing.T) {
	type captured struct {
		header http.Header
		body   []byte
	}
	got := make(chan captured, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- captured{r.Header.Clone(), body}
	}))
	defer srv.Close()
	d := NewDeliverer(Config{Client: NewClient(ClientOptions{AllowPrivate: true})})
	old := "whsec_" + "c2Vjb25kLXNlY3JldC1vZi10aGUtcm90YXRpb24="
	ep := Endpoint{URL: srv.URL, Format: FormatJSON, Secrets: []Secret{mustSecret(t, old), mustSecret(t, testSecret)}}
	if res := d.Deliver(context.Background(), ep, sampleMessage); res.Outcome != OutcomeDelivered {
		t.Fatalf("delivery: %+v", res)
	}
	c := <-got
	tampered := bytes.Replace(c.body, []byte(`"content":"`), []byte(`"content":"!`), 1)
	other := "whsec_" + "YW5vdGhlci1zZWNyZXQtbm90LXRoZS1icmlkZ2Vz"

	dir := t.TempDir()
	goFile := filepath.Join(dir, "verify.go")
	driver := `
func main() {
	body, _ := io.ReadAll(os.Stdin)
	if !verify(os.Getenv("SECRET"), os.Getenv("ID"), os.Getenv("TS"), os.Getenv("SIG"), body) {
		os.Exit(1)
	}
}
`
	src := strings.Replace(docSnippet(t, "go"), "import (", "import (\n\t\"io\"\n\t\"os\"", 1) + driver
	if err := os.WriteFile(goFile, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "verify")
	if out, err := exec.Command("go", "build", "-o", bin, goFile).CombinedOutput(); err != nil {
		t.Fatalf("the Go snippet does not build: %v\n%s", err, out)
	}
	jsFile := filepath.Join(dir, "verify.cjs")
	js := docSnippet(t, "js") + `
const headers = JSON.parse(process.env.HEADERS)
const body = require('fs').readFileSync(0)
process.exit(verify(process.env.SECRET, headers, body) ? 0 : 1)
`
	if err := os.WriteFile(jsFile, []byte(js), 0o600); err != nil {
		t.Fatal(err)
	}
	pyFile := filepath.Join(dir, "verify.py")
	py := docSnippet(t, "python") + `
import json, os, sys
sys.exit(0 if verify(os.environ["SECRET"], json.loads(os.environ["HEADERS"]), sys.stdin.buffer.read()) else 1)
`
	if err := os.WriteFile(pyFile, []byte(py), 0o600); err != nil {
		t.Fatal(err)
	}
	headers, _ := json.Marshal(map[string]string{HeaderID: c.header.Get(HeaderID), HeaderTimestamp: c.header.Get(HeaderTimestamp),
		HeaderSignature: c.header.Get(HeaderSignature)})
	verifiers := map[string][]string{"go": {bin}, "js": {"node", jsFile}, "python": {"python3", pyFile}}
	for lang, argv := range verifiers {
		run := func(secret string, body []byte) bool {
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Env = append(os.Environ(), "SECRET="+secret, "ID="+c.header.Get(HeaderID), "TS="+c.header.Get(HeaderTimestamp),
				"SIG="+c.header.Get(HeaderSignature), "HEADERS="+string(headers))
			cmd.Stdin = bytes.NewReader(body)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if _, exit := err.(*exec.ExitError); err != nil && !exit {
				t.Fatalf("%s verifier: %v", lang, err)
			}
			if stderr.Len() > 0 {
				t.Fatalf("%s verifier wrote to stderr: %s", lang, stderr.String())
			}
			return err == nil
		}
		if !run(testSecret, c.body) || !run(old, c.body) {
			t.Errorf("the %s snippet refuses a real delivery", lang)
		}
		if run(testSecret, tampered) {
			t.Errorf("the %s snippet accepts a changed body", lang)
		}
		if run(other, c.body) {
			t.Errorf("the %s snippet accepts another secret", lang)
		}
	}
}
