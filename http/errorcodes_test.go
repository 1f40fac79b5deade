package http

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestErrorCodesMatchOpenAPI reads the package's source: the Code
// constants are the only codes an answer can carry (every Error literal and
// errorf call names one, no string literal spells one elsewhere), each is
// used, ErrorCodes lists exactly them, and the Error schema of openapi.json
// lists exactly them too, in both directions.
func TestErrorCodesMatchOpenAPI(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{} // name -> code
	var parsed []*ast.File
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, f)
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if !strings.HasPrefix(n.Name, "Code") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Errorf("%s: %s is not a string constant", fset.Position(n.Pos()), n.Name)
						continue
					}
					consts[n.Name], _ = strconv.Unquote(lit.Value)
				}
			}
		}
	}
	if len(consts) < 20 {
		t.Fatalf("found %d Code constants; the scan is broken", len(consts))
	}
	codes := map[string]bool{}
	for _, v := range consts {
		if codes[v] {
			t.Errorf("code %q is declared twice", v)
		}
		codes[v] = true
	}

	isCode := func(e ast.Expr) bool {
		id, ok := e.(*ast.Ident)
		_, declared := consts[identName(id, ok)]
		return declared
	}
	used := map[string]bool{}
	for _, f := range parsed {
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.FuncDecl:
				// errorf passes its code parameter on; its callers are
				// checked instead.
				return x.Name.Name != "errorf"
			case *ast.ValueSpec:
				// The declarations themselves, and the ErrorCodes list.
				for _, name := range x.Names {
					if strings.HasPrefix(name.Name, "Code") || name.Name == "ErrorCodes" {
						return false
					}
				}
			case *ast.Ident:
				if _, ok := consts[x.Name]; ok {
					used[x.Name] = true
				}
			case *ast.BasicLit:
				if s, err := strconv.Unquote(x.Value); err == nil && x.Kind == token.STRING && codes[s] {
					t.Errorf("%s: the literal %q spells an error code; use its Code constant", fset.Position(x.Pos()), s)
				}
			case *ast.CompositeLit:
				if id, ok := x.Type.(*ast.Ident); ok && id.Name == "Error" {
					for _, el := range x.Elts {
						kv, ok := el.(*ast.KeyValueExpr)
						if ok && identName(kv.Key.(*ast.Ident), true) == "Code" && !isCode(kv.Value) {
							t.Errorf("%s: an Error's Code is not a Code constant", fset.Position(kv.Pos()))
						}
					}
				}
			case *ast.CallExpr:
				if id, ok := x.Fun.(*ast.Ident); ok && id.Name == "errorf" && (len(x.Args) < 2 || !isCode(x.Args[1])) {
					t.Errorf("%s: errorf's code is not a Code constant", fset.Position(x.Pos()))
				}
			}
			return true
		})
	}
	for name := range consts {
		if !used[name] {
			t.Errorf("%s is declared but no answer uses it", name)
		}
	}

	listed := map[string]bool{}
	for _, c := range ErrorCodes {
		if listed[c] {
			t.Errorf("ErrorCodes lists %q twice", c)
		}
		listed[c] = true
	}
	if d := setDiff(codes, listed); len(d) > 0 {
		t.Errorf("declared codes missing from ErrorCodes: %v", d)
	}
	if d := setDiff(listed, codes); len(d) > 0 {
		t.Errorf("ErrorCodes lists codes no constant declares: %v", d)
	}

	var doc struct {
		Components struct {
			Schemas struct {
				Error struct {
					Properties struct {
						Code struct {
							Enum []string `json:"enum"`
						} `json:"code"`
					} `json:"properties"`
				} `json:"Error"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, c := range doc.Components.Schemas.Error.Properties.Code.Enum {
		documented[c] = true
	}
	if d := setDiff(codes, documented); len(d) > 0 {
		t.Errorf("codes the server can answer with but openapi.json does not list: %v", d)
	}
	if d := setDiff(documented, codes); len(d) > 0 {
		t.Errorf("codes openapi.json lists but the server never answers with: %v", d)
	}
	if !slices.Equal(doc.Components.Schemas.Error.Properties.Code.Enum, ErrorCodes) {
		t.Errorf("openapi.json lists the codes in another order than ErrorCodes")
	}
}

func identName(id *ast.Ident, ok bool) string {
	if !ok || id == nil {
		return ""
	}
	return id.Name
}

func setDiff(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
