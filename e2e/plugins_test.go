package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/plugin/plugintest"
	"github.com/xmtpbridge/bridge/internal/testkit"
)

// pluginTune is the plug-in configuration of the e2e nodes: a call limit
// with room for a loaded test machine.
var pluginTune = map[string]string{"BRIDGE_PLUGIN_TIMEOUT": "2s"}

// uploadPlugin posts wasm as the account's plug-in name and returns its id.
func uploadPlugin(t testing.TB, api, key, name string, wasm []byte, want int) string {
	t.Helper()
	req, err := http.NewRequest("POST", api+"/v1/plugins?name="+name, bytes.NewReader(wasm))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/wasm")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("upload plugin %s: %v", name, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	if resp.StatusCode != want {
		t.Fatalf("upload plugin %s: status %d, want %d: %s", name, resp.StatusCode, want, raw)
	}
	return str(m, "plugin", "id")
}

// countingTarget answers every request with body and counts them.
func countingTarget(t testing.TB, body string) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func jsonBridge(t testing.TB, api, key, url string) (string, string) {
	t.Helper()
	created := mustCall(t, 201, "POST", api+"/v1/bridges", key, map[string]any{
		"name": "plugged", "forward": map[string]any{"url": url, "bodyFormat": "json", "replyMode": "reply"},
	})
	return str(created, "bridge", "id"), str(created, "bridge", "address")
}

// TestPluginsWithXMTPJS has xmtp-js talk to three bridges of one node: an
// on_message plug-in that answers "help" on a bridge that has no endpoint
// at all, an on_response plug-in that turns the target's JSON answer into
// a sentence, and a drop filter whose target receives nothing while the
// delivery still completes.
func TestPluginsWithXMTPJS(t *testing.T) {
	t.Parallel()
	c := newCluster(t, pluginTune)
	acct := mustCall(t, 201, "POST", c.api+"/v1/accounts", "", map[string]any{"name": "owner", "signupKey": signupKey})
	key := str(acct, "apiKey")
	bot := uploadPlugin(t, c.api, key, "bot", plugintest.Build(t, plugintest.Bot, ""), 201)

	// The help bot has no endpoint at all.
	created := mustCall(t, 201, "POST", c.api+"/v1/bridges", key, map[string]any{"name": "helpbot"})
	helpID, helpAddr := str(created, "bridge", "id"), str(created, "bridge", "address")
	if url := str(created, "bridge", "forward", "url"); url != "" {
		t.Fatalf("a bridge created without forward.url has url %q", url)
	}
	mustCall(t, 200, "PUT", c.api+"/v1/bridges/"+helpID+"/plugins/on_message", key,
		map[string]any{"plugin": bot, "config": map[string]string{"mode": "help"}, "onError": "forward"})

	weatherTarget, weatherHits := countingTarget(t, `{"city":"Paris","tempC":21}`)
	weatherID, weatherAddr := jsonBridge(t, c.api, key, weatherTarget.URL)
	mustCall(t, 200, "PUT", c.api+"/v1/bridges/"+weatherID+"/plugins/on_response", key, map[string]any{"plugin": bot})

	dropTarget, dropHits := countingTarget(t, `{"reply":"dropped messages must not arrive"}`)
	dropID, dropAddr := jsonBridge(t, c.api, key, dropTarget.URL)
	mustCall(t, 200, "PUT", c.api+"/v1/bridges/"+dropID+"/plugins/on_message", key,
		map[string]any{"plugin": bot, "config": map[string]string{"mode": "drop"}})

	// One xmtp-js client at a time: the machine running the tests is shared.
	talk := func(addr, text string, wantReply bool) string {
		js := runJS(t, "quickstart.cjs", addr, text, "http://"+c.xmtpHTTP)
		js.next("ready", time.Minute)
		js.next("sent", time.Minute)
		if !wantReply {
			return ""
		}
		r := js.next("reply", time.Minute)
		if !strings.EqualFold(r.Sender, addr) {
			t.Fatalf("reply from %s, want %s", r.Sender, addr)
		}
		return r.Text
	}
	if got := talk(helpAddr, "help", true); got != "Commands: help, weather <city>" {
		t.Fatalf("help reply %q", got)
	}
	if got := talk(weatherAddr, "weather in Paris?", true); got != "It is 21°C in Paris." {
		t.Fatalf("weather reply %q", got)
	}
	if n := weatherHits.Load(); n != 1 {
		t.Fatalf("the weather endpoint got %d requests, want 1", n)
	}
	talk(dropAddr, "buy cheap pills", false)
	testkit.WaitFor(t, time.Minute, func() bool {
		_, m := call(t, "GET", c.api+"/v1/bridges/"+dropID+"/deliveries?status=succeeded", key, nil)
		ds, _ := m["deliveries"].([]any)
		return len(ds) == 1
	}, "the dropped message's delivery to complete")
	if n := dropHits.Load(); n != 0 {
		t.Fatalf("the drop filter's endpoint got %d requests", n)
	}
	// on_send: REST sends through the help bridge are prefixed by its
	// plug-in, or refused with 422 plugin_refused.
	mustCall(t, 200, "PUT", c.api+"/v1/bridges/"+helpID+"/plugins/on_send", key,
		map[string]any{"plugin": bot, "config": map[string]string{"prefix": "[bot] "}})
	rcv := runJS(t, "peer.cjs", "receive", "http://"+c.xmtpHTTP, helpAddr, "-", "[bot] hello from REST")
	peer := rcv.next("ready", time.Minute).Address
	var sent map[string]any
	testkit.WaitFor(t, 30*time.Second, func() bool {
		status, out := call(t, "POST", c.api+"/v1/bridges/"+helpID+"/messages", key, map[string]any{"to": peer, "content": "hello from REST"})
		sent = out
		return status == 202
	}, "/v1 messages to accept the send")
	if got := rcv.next("received", time.Minute); got.ID != str(sent, "messageId") {
		t.Fatalf("xmtp-js received %+v, want message %s", got, str(sent, "messageId"))
	}
	status, out := call(t, "POST", c.api+"/v1/bridges/"+helpID+"/messages", key, map[string]any{"to": peer, "content": "a forbidden word"})
	if status != 422 || str(out, "code") != "plugin_refused" {
		t.Fatalf("refused send: %d %v", status, out)
	}

	lines := strings.Join(metric(t, c.api, "bridge_plugin_calls_total"), "\n")
	if !strings.Contains(lines, `bridge_plugin_calls_total{point="on_message"} 2`) ||
		!strings.Contains(lines, `bridge_plugin_calls_total{point="on_response"} 1`) ||
		!strings.Contains(lines, `bridge_plugin_calls_total{point="on_send"} 2`) {
		t.Fatalf("plugin call metrics: %s", lines)
	}
}

// TestPluginRunsOnAnotherNodeAfterKill9 binds a plug-in to a bridge of a
// two-node cluster, kills the node that hosts the bridge with SIGKILL and
// has xmtp-js message the bridge: the survivor, which loads the plug-in
// from Postgres, answers. A new upload of the plug-in is then running on
// the survivor without any restart.
func TestPluginRunsOnAnotherNodeAfterKill9(t *testing.T) {
	t.Parallel()
	c := newBridgeCluster(t, clusterOpts{provider: "automanaged", nodes: 2, tune: pluginTune})
	entry := c.nodes[0]
	acct := mustCall(t, 201, "POST", entry.api+"/v1/accounts", "", map[string]any{"name": "owner", "signupKey": signupKey})
	key := str(acct, "apiKey")
	tg, hits := countingTarget(t, `{"reply":"the endpoint should not be called"}`)
	id, addr := jsonBridge(t, entry.api, key, tg.URL)
	v1 := plugintest.Build(t, plugintest.Bot, "-X main.version=v1")
	v2 := plugintest.Build(t, plugintest.Bot, "-X main.version=v2")
	pid := uploadPlugin(t, entry.api, key, "versioned", v1, 201)
	mustCall(t, 200, "PUT", entry.api+"/v1/bridges/"+id+"/plugins/on_message", key,
		map[string]any{"plugin": pid, "config": map[string]string{"mode": "version"}})

	var host *clusterNode
	testkit.WaitFor(t, 2*time.Minute, func() bool {
		_, m := call(t, "GET", entry.api+"/v1/bridges/"+id, key, nil)
		for _, n := range c.nodes {
			if str(m, "live", "node") == n.id {
				host = n
			}
		}
		return host != nil
	}, "the bridge to be hosted")
	js := runJS(t, "quickstart.cjs", addr, "before", "http://"+c.x.xmtpHTTP)
	js.next("ready", time.Minute)
	js.next("sent", time.Minute)
	if r := js.next("reply", time.Minute); r.Text != "v1: before" {
		t.Fatalf("reply before the kill %+v", r)
	}

	host.kill9()
	survivor := c.nodes[0]
	if survivor == host {
		survivor = c.nodes[1]
	}
	testkit.WaitFor(t, 2*time.Minute, func() bool {
		_, m := call(t, "GET", survivor.api+"/v1/bridges/"+id, key, nil)
		return str(m, "live", "node") == survivor.id
	}, "the bridge to move to %s", survivor.id)
	js = runJS(t, "quickstart.cjs", addr, "after", "http://"+c.x.xmtpHTTP)
	js.next("ready", time.Minute)
	js.next("sent", time.Minute)
	if r := js.next("reply", time.Minute); r.Text != "v1: after" {
		t.Fatalf("reply after the kill %+v", r)
	}

	// The next version, uploaded through the survivor, runs at once.
	uploadPlugin(t, survivor.api, key, "versioned", v2, 200)
	js = runJS(t, "quickstart.cjs", addr, "upgraded", "http://"+c.x.xmtpHTTP)
	js.next("ready", time.Minute)
	js.next("sent", time.Minute)
	if r := js.next("reply", time.Minute); r.Text != "v2: upgraded" {
		t.Fatalf("reply after the new upload %+v", r)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the endpoint got %d requests; the plug-in answers every message", n)
	}
}
