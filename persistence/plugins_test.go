package persistence

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

var testWasm = []byte("\x00asm\x01\x00\x00\x00 v1")

func TestPluginVersionsBindingsAndDeletion(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	acc, _, _, err := s.CreateAccount(ctx, "owner")
	if err != nil {
		t.Fatal(err)
	}
	other, _, _, _ := s.CreateAccount(ctx, "other")
	br, _ := newBridge(t, s, acc.ID, []byte("bundle"))
	obr, _ := newBridge(t, s, other.ID, []byte("bundle"))

	p, created, err := s.SavePlugin(ctx, acc.ID, "bot", testWasm, []string{"on_message", "on_send"}, 2)
	if err != nil || !created || p.Version != 1 || p.SHA256 != PluginSHA256(testWasm) {
		t.Fatalf("save: %+v %v %v", p, created, err)
	}
	if _, err := s.BindPlugin(ctx, acc.ID, br.ID, "on_response", p.ID, nil, "forward"); !errors.Is(err, ErrPluginExport) {
		t.Fatalf("bind to a point not exported: %v", err)
	}
	if _, err := s.BindPlugin(ctx, other.ID, obr.ID, "on_message", p.ID, nil, "forward"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bind another account's plug-in: %v", err)
	}
	if _, err := s.BindPlugin(ctx, acc.ID, obr.ID, "on_message", p.ID, nil, "forward"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bind to another account's bridge: %v", err)
	}
	b, err := s.BindPlugin(ctx, acc.ID, br.ID, "on_message", p.ID, map[string]string{"mode": "help"}, "drop")
	if err != nil || b.Config["mode"] != "help" || b.OnError != "drop" || !strings.EqualFold(b.BridgeAddress, br.Address) {
		t.Fatalf("bind: %+v %v", b, err)
	}
	// A new version must keep the bound point.
	if _, _, err := s.SavePlugin(ctx, acc.ID, "bot", []byte("\x00asm\x01\x00\x00\x00 v2"), []string{"on_send"}, 2); !errors.Is(err, ErrPluginExport) {
		t.Fatalf("new version without the bound point: %v", err)
	}
	p2, created, err := s.SavePlugin(ctx, acc.ID, "bot", []byte("\x00asm\x01\x00\x00\x00 v2"), []string{"on_message"}, 2)
	if err != nil || created || p2.ID != p.ID || p2.Version != 2 {
		t.Fatalf("new version: %+v %v %v", p2, created, err)
	}
	if etag, err := s.PluginETag(ctx, p.ID); err != nil || etag != p2.SHA256 {
		t.Fatalf("etag %q %v", etag, err)
	}
	if code, err := s.PluginCode(ctx, p.ID); err != nil || string(code.Wasm) != "\x00asm\x01\x00\x00\x00 v2" {
		t.Fatalf("code %q %v", code.Wasm, err)
	}
	if _, _, err := s.SavePlugin(ctx, acc.ID, "second", testWasm, []string{"on_message"}, 2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SavePlugin(ctx, acc.ID, "third", testWasm, []string{"on_message"}, 2); !errors.Is(err, ErrPluginQuota) {
		t.Fatalf("over quota: %v", err)
	}
	if err := s.DeletePlugin(ctx, acc.ID, p.ID); !errors.Is(err, ErrPluginBound) {
		t.Fatalf("delete bound: %v", err)
	}
	if err := s.DeletePlugin(ctx, other.ID, p.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete as another account: %v", err)
	}
	if err := s.UnbindPlugin(ctx, acc.ID, br.ID, "on_message"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePlugin(ctx, acc.ID, p.ID); err != nil {
		t.Fatal(err)
	}
	if ps, _ := s.ListPlugins(ctx, acc.ID); len(ps) != 1 || ps[0].Name != "second" {
		t.Fatalf("list after delete: %+v", ps)
	}
}

// TestPluginChangesArriveAsEvents: binding changes, a new version of a
// bound plug-in and the deletion of a bridge each notify the bridge's id.
func TestPluginChangesArriveAsEvents(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, url := newTestStore(t)
	acc, _, _, _ := s.CreateAccount(ctx, "owner")
	br, _ := newBridge(t, s, acc.ID, []byte("bundle"))
	events := make(chan string, 16)
	resets := make(chan struct{}, 4)
	go WatchPlugins(ctx, url, slog.New(slog.DiscardHandler), func(id string) { events <- id }, func() { resets <- struct{}{} })
	select {
	case <-resets:
	case <-time.After(time.Minute):
		t.Fatal("the watcher never connected")
	}
	expect := func(what string) {
		t.Helper()
		select {
		case id := <-events:
			if id != br.ID {
				t.Fatalf("%s: event for %s, want %s", what, id, br.ID)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s: no event", what)
		}
	}
	p, _, _ := s.SavePlugin(ctx, acc.ID, "bot", testWasm, []string{"on_message"}, 0)
	if _, err := s.BindPlugin(ctx, acc.ID, br.ID, "on_message", p.ID, nil, "forward"); err != nil {
		t.Fatal(err)
	}
	expect("bind")
	if _, _, err := s.SavePlugin(ctx, acc.ID, "bot", []byte("\x00asm\x01\x00\x00\x00 v2"), []string{"on_message"}, 0); err != nil {
		t.Fatal(err)
	}
	expect("new version")
	if err := s.DeleteBridge(ctx, acc.ID, br.ID); err != nil {
		t.Fatal(err)
	}
	expect("bridge deleted")
}
