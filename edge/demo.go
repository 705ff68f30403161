package edge

import (
	"embed"
	"io/fs"
	"net/http"
)

// demoFiles is the demo page and the built JS SDK (demo/sdk, copied there
// by `npm run build` in clients/js and committed, so `go build` needs no
// npm; .ci/run fails when the committed copy differs from a fresh build).
//
//go:embed demo
var demoFiles embed.FS

// demoRoutes serves the demo chat page at /demo/.
func demoRoutes(m *http.ServeMux) {
	sub, err := fs.Sub(demoFiles, "demo")
	if err != nil {
		panic("demo assets: " + err.Error()) // the embed directive guarantees the directory
	}
	m.Handle("GET /demo/", http.StripPrefix("/demo/", http.FileServer(http.FS(sub))))
	m.Handle("GET /demo", http.RedirectHandler("/demo/", http.StatusMovedPermanently))
}
