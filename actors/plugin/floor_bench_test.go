package plugin

import (
	"context"
	"testing"
	"time"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"

	"github.com/xmtpbridge/bridge/actors/plugin/plugintest"
)

// section is one section of a Wasm module, for payloads under 128 bytes.
func section(id byte, payload ...byte) []byte {
	return append([]byte{id, byte(len(payload))}, payload...)
}

// rawModule is a Wasm module written by hand, with no language runtime:
// on_message returns 0 and does nothing else; loop1000 runs a loop of
// 1,000 iterations of two additions and a compare, then returns 0.
func rawModule() []byte {
	m := append([]byte{}, wasmMagic...)
	m = append(m, section(1, 1, 0x60, 0, 1, 0x7f)...) // one type: () -> i32
	m = append(m, section(3, 2, 0, 0)...)             // two functions of that type
	exports := []byte{2, 10}
	exports = append(exports, "on_message"...)
	exports = append(exports, 0, 0, 8)
	exports = append(exports, "loop1000"...)
	exports = append(exports, 0, 1)
	m = append(m, section(7, exports...)...)
	noop := []byte{4, 0, 0x41, 0, 0x0b} // no locals; i32.const 0; end
	loop := []byte{22, 1, 1, 0x7f,      // one i32 local
		0x03, 0x40, // loop
		0x20, 0, 0x41, 1, 0x6a, 0x22, 0, // local.get 0; i32.const 1; i32.add; local.tee 0
		0x41, 0xe8, 0x07, 0x49, 0x0d, 0, // i32.const 1000; i32.lt_u; br_if 0
		0x0b, 0x41, 0, 0x0b} // end; i32.const 0; end
	m = append(m, section(10, append(append([]byte{2}, noop...), loop...)...)...)
	return m
}

// BenchmarkCallFloor takes a warm call apart, to show where its time goes.
// Each part runs twice: with wazero's context cancellation (terminate, the
// sandbox's setting, which is what stops an infinite loop) and without it
// (free, which no plug-in may run with; it is measured only to show what
// the cancellation costs). The parts:
//
//	wazero-call      one call of an exported Wasm function from Go, as the
//	                 SDK makes for each kernel function (reset, alloc, ...)
//	wazero-loop1000  a Wasm loop of 1,000 iterations, called from Go
//	sdk-noop         an Extism call of a hand-written function that does
//	                 nothing: the SDK's own floor
//	go-noop          the same with the Go guest (its runtime's entry)
//	go-input         the Go guest reads the input (shim as the bot's)
//	go-output        the Go guest answers {"action":"forward"}
//	go-json          the Go guest's JSON work on a fixed message, no host calls
//	go-on_message    input, JSON work and output: the bot's forward mode
func BenchmarkCallFloor(b *testing.B) {
	in := benchInput(b)
	raw := rawModule()
	guest := plugintest.Build(b, plugintest.Floor, "")
	for _, terminate := range []bool{true, false} {
		name := "free"
		if terminate {
			name = "terminate"
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		rc := func() wazero.RuntimeConfig {
			return wazero.NewRuntimeConfig().WithCloseOnContextDone(terminate).WithMemoryLimitPages(256)
		}
		rt := wazero.NewRuntimeWithConfig(ctx, rc())
		mod, err := rt.Instantiate(ctx, raw)
		if err != nil {
			b.Fatal(err)
		}
		for _, fn := range []string{"on_message", "loop1000"} {
			sub := map[string]string{"on_message": "wazero-call", "loop1000": "wazero-loop1000"}[fn]
			b.Run(name+"/"+sub, func(b *testing.B) {
				b.ReportAllocs()
				defer cpuPerOp(b)()
				for i := 0; i < b.N; i++ {
					if _, err := mod.ExportedFunction(fn).Call(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		instance := func(wasm []byte) *extism.Plugin {
			cp, err := extism.NewCompiledPlugin(ctx, extism.Manifest{Wasm: []extism.Wasm{extism.WasmData{Data: wasm, Name: "main"}}},
				extism.PluginConfig{RuntimeConfig: rc(), EnableWasi: true}, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { cp.Close(context.Background()) })
			p, err := cp.Instance(ctx, extism.PluginInstanceConfig{ModuleConfig: wazero.NewModuleConfig().WithSysWalltime().WithSysNanotime()})
			if err != nil {
				b.Fatal(err)
			}
			return p
		}
		call := func(p *extism.Plugin, sub, fn string) {
			b.Run(name+"/"+sub, func(b *testing.B) {
				b.ReportAllocs()
				defer cpuPerOp(b)()
				for i := 0; i < b.N; i++ {
					if rc, _, err := p.CallWithContext(ctx, fn, in); err != nil || rc != 0 {
						b.Fatal(rc, err)
					}
				}
			})
		}
		call(instance(raw), "sdk-noop", "on_message")
		g := instance(guest)
		for _, fn := range []string{"noop", "input", "output", "json", "on_message"} {
			call(g, "go-"+fn, fn)
		}
		rt.Close(ctx)
		cancel()
	}
}
