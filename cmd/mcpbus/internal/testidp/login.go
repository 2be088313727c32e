package testidp

import (
	"context"
	"html/template"
	"net/http"

	"github.com/zitadel/oidc/v3/pkg/op"
)

const loginPath = "/login"

// loginHandler is the sign-in page the authorization endpoint redirects
// to: GET shows a form, POST (id, username, password) signs in and sends
// the browser on to op's callback, which issues the code.
type loginHandler struct {
	store    *storage
	issuer   string
	callback func(context.Context, string) string
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>mcpbus test IdP: sign in</title></head>
<body>
<h1>Sign in</h1>
{{if .Error}}<p role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/login">
<input type="hidden" name="id" value="{{.ID}}">
<label>Username or email <input name="username" autocomplete="username" autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button>
</form>
</body></html>
`))

func (h *loginHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		h.page(w, r.URL.Query().Get("id"), "", http.StatusOK)
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "login: the form cannot be read", http.StatusBadRequest)
			return
		}
		id := r.PostForm.Get("id")
		if err := h.store.signIn(id, r.PostForm.Get("username"), r.PostForm.Get("password")); err != nil {
			h.page(w, id, err.Error(), http.StatusUnauthorized)
			return
		}
		ctx := op.ContextWithIssuer(r.Context(), h.issuer)
		http.Redirect(w, r, h.callback(ctx, id), http.StatusSeeOther)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "login: GET or POST", http.StatusMethodNotAllowed)
	}
}

func (h *loginHandler) page(w http.ResponseWriter, id, msg string, status int) {
	if id == "" {
		http.Error(w, "login: no sign-in request (id); start at the authorization endpoint", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	loginPage.Execute(w, struct{ ID, Error string }{id, msg})
}
