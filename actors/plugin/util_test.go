package plugin

import (
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
)

func walk(dir string, onFile func()) error {
	return filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			onFile()
		}
		return nil
	})
}

var _ = os.Stat

func recordHandler(header, body *string, h *harness) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.hits.Add(1)
		*header = r.Header.Get("x-plugin")
		b, _ := io.ReadAll(r.Body)
		*body = string(b)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"reply":"ok"}`))
	})
}
