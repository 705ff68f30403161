// Package pushtest runs fake APNs and FCM servers on loopback for tests:
// they check authentication the way the real services do, record what
// they receive, and answer with scripted responses.
package pushtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/allspark-rt/allspark/push"
	"github.com/golang-jwt/jwt/v5"
)

// Request is one notification a fake received.
type Request struct {
	Token  string         // device token
	Header http.Header    //
	Body   map[string]any // decoded JSON body
}

// Reply scripts one answer; an empty script answers 200.
type Reply struct {
	Status     int
	Body       string
	RetryAfter string
}

type recorder struct {
	mu         sync.Mutex
	onTry      func(n int)               // guarded by mu
	onTokenTry func(token string, n int) // guarded by mu
	reqs       []Request                 // guarded by mu: accepted (200) requests
	tries      int                       // guarded by mu: all send attempts
	tokenTries map[string]int            // guarded by mu: send attempts per device token
	script     []Reply                   // guarded by mu
	scripts    map[string][]Reply        // guarded by mu: per device token, before script
}

// OnTry sets a hook run on every send attempt with its number (from 1),
// before the fake answers; nil removes it.
func (r *recorder) OnTry(f func(n int)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onTry = f
}

// OnTokenTry sets a hook run on every send attempt with the device token
// and the attempt's number for that token (from 1), before the fake
// answers; nil removes it. The hook may block: it holds only that answer.
func (r *recorder) OnTokenTry(f func(token string, n int)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onTokenTry = f
}

// ScriptToken queues replies for the next sends to one device token; they
// come before the shared Script, which answers the other tokens.
func (r *recorder) ScriptToken(token string, rs ...Reply) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.scripts == nil {
		r.scripts = map[string][]Reply{}
	}
	r.scripts[token] = append(r.scripts[token], rs...)
}

// Script queues replies for the next sends.
func (r *recorder) Script(rs ...Reply) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.script = append(r.script, rs...)
}

// Requests returns the notifications answered 200.
func (r *recorder) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}

// Tries counts every send attempt, answered or not.
func (r *recorder) Tries() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tries
}

func (r *recorder) answer(w http.ResponseWriter, req Request) {
	r.mu.Lock()
	r.tries++
	if r.tokenTries == nil {
		r.tokenTries = map[string]int{}
	}
	r.tokenTries[req.Token]++
	reply := Reply{Status: 200}
	if own := r.scripts[req.Token]; len(own) > 0 {
		reply, r.scripts[req.Token] = own[0], own[1:]
	} else if len(r.script) > 0 {
		reply, r.script = r.script[0], r.script[1:]
	}
	n, hook := r.tries, r.onTry
	tn, tokenHook := r.tokenTries[req.Token], r.onTokenTry
	r.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	if tokenHook != nil {
		tokenHook(req.Token, tn)
	}
	if reply.Status == 200 {
		// Recorded after the hooks, so a held answer is not counted as
		// delivered before the worker could see it.
		r.mu.Lock()
		r.reqs = append(r.reqs, req)
		r.mu.Unlock()
	}
	if reply.RetryAfter != "" {
		w.Header().Set("Retry-After", reply.RetryAfter)
	}
	w.WriteHeader(reply.Status)
	_, _ = io.WriteString(w, reply.Body)
}

// APNs is a fake APNs server speaking HTTP/2 over TLS.
type APNs struct {
	recorder
	Config push.APNsConfig
	Client *http.Client // trusts the fake's certificate
	key    *ecdsa.PrivateKey
}

// NewAPNs starts a fake APNs with a fresh .p8 key written to a temp file.
func NewAPNs(t testing.TB) *APNs {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyFile := filepath.Join(t.TempDir(), "AuthKey_TESTKEY123.p8")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &APNs{key: key}
	f.Config = push.APNsConfig{KeyFile: keyFile, KeyID: "TESTKEY123", TeamID: "TEAM123456", Topic: "com.example.app"}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	f.Config.URL = srv.URL
	f.Client = srv.Client()
	return f
}

func (f *APNs) serve(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, reason string) {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"reason": reason})
	}
	if r.ProtoMajor != 2 || r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/3/device/") {
		fail(http.StatusBadRequest, "BadPath")
		return
	}
	auth := r.Header.Get("Authorization")
	tok, err := jwt.Parse(strings.TrimPrefix(auth, "bearer "), func(tk *jwt.Token) (any, error) { return &f.key.PublicKey, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(f.Config.TeamID))
	if !strings.HasPrefix(auth, "bearer ") || err != nil || tok.Header["kid"] != f.Config.KeyID {
		fail(http.StatusForbidden, "InvalidProviderToken")
		return
	}
	if r.Header.Get("apns-topic") != f.Config.Topic {
		fail(http.StatusBadRequest, "TopicDisallowed")
		return
	}
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		fail(http.StatusBadRequest, "PayloadEmpty")
		return
	}
	f.answer(w, Request{Token: strings.TrimPrefix(r.URL.Path, "/3/device/"), Header: r.Header.Clone(), Body: body})
}

// FCM is a fake FCM HTTP v1 API with a fake OAuth token endpoint.
type FCM struct {
	recorder
	Config push.FCMConfig
	Client *http.Client
	key    *rsa.PrivateKey
}

// FakeAccessToken is the OAuth access token the fake hands out.
const FakeAccessToken = "fake-fcm-access-token"

// NewFCM starts a fake FCM and writes a matching service-account file.
func NewFCM(t testing.TB) *FCM {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &FCM{key: key}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	sa, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "test-project", "private_key_id": "key-1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "push@test-project.iam.gserviceaccount.com", "client_id": "1",
		"token_uri": srv.URL + "/token",
	})
	file := filepath.Join(t.TempDir(), "service-account.json")
	if err := os.WriteFile(file, sa, 0o600); err != nil {
		t.Fatal(err)
	}
	f.Config = push.FCMConfig{CredentialsFile: file, URL: srv.URL}
	f.Client = srv.Client()
	return f
}

func (f *FCM) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		// The service account signs a JWT assertion; check it like Google does.
		_ = r.ParseForm()
		_, err := jwt.Parse(r.Form.Get("assertion"), func(*jwt.Token) (any, error) { return &f.key.PublicKey, nil },
			jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer("push@test-project.iam.gserviceaccount.com"))
		if r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || err != nil {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"`+FakeAccessToken+`","token_type":"Bearer","expires_in":3600}`)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/projects/test-project/messages:send" {
		http.Error(w, `{"error":{"status":"NOT_FOUND"}}`, http.StatusNotFound)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+FakeAccessToken {
		http.Error(w, `{"error":{"status":"UNAUTHENTICATED"}}`, http.StatusUnauthorized)
		return
	}
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, `{"error":{"status":"INVALID_ARGUMENT"}}`, http.StatusBadRequest)
		return
	}
	msg, _ := body["message"].(map[string]any)
	tok, _ := msg["token"].(string)
	f.answer(w, Request{Token: tok, Header: r.Header.Clone(), Body: body})
}

// Unregistered is FCM's answer for a token that is gone.
const Unregistered = `{"error":{"code":404,"status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`
