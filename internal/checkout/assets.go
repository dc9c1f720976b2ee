package checkout

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"path"
	"strconv"
)

//go:embed assets/*
var assetFS embed.FS

// asset is an embedded file with its content hash, which versions its URL.
type asset struct {
	body        []byte
	contentType string
	version     string
}

func loadAssets() map[string]asset {
	entries, err := assetFS.ReadDir("assets")
	if err != nil {
		panic("checkout: embedded assets: " + err.Error())
	}
	m := map[string]asset{}
	for _, e := range entries {
		b, err := assetFS.ReadFile("assets/" + e.Name())
		if err != nil {
			panic("checkout: embedded assets: " + err.Error())
		}
		sum := sha256.Sum256(b)
		ct := "application/octet-stream"
		switch path.Ext(e.Name()) {
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		}
		m[e.Name()] = asset{body: b, contentType: ct, version: hex.EncodeToString(sum[:6])}
	}
	return m
}

// assetURL is the versioned URL of an embedded file: a new build gets new URLs, so the files
// can be cached for long.
func (c *Checkout) assetURL(name string) string {
	return "/checkout/assets/" + name + "?v=" + c.assets[name].version
}

// serveAsset serves /checkout/assets/{file}; any other /checkout/{id}/{file} is not ours.
func (c *Checkout) serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := c.assets[r.PathValue("file")]
	if r.PathValue("id") != "assets" || !ok {
		c.notFound(w, r)
		return
	}
	if r.URL.Query().Get("v") == a.version {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(a.body)))
	_, _ = w.Write(a.body)
}
