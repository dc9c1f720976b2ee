package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runCmd runs the program in-process with data in dir and returns its exit code and output.
func runCmd(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut, func(k string) string { return env[k] })
	return code, out.String(), errOut.String()
}

func TestHelpAndUsage(t *testing.T) {
	if code, out, _ := runCmd(t, nil, "--help"); code != 0 || !strings.Contains(out, "demo") || !strings.Contains(out, "apikey") {
		t.Fatalf("--help: %d %q", code, out)
	}
	for _, cmd := range []string{"demo", "serve", "sandbox", "migrate"} {
		code, _, errOut := runCmd(t, nil, cmd, "--help")
		if code != 0 || !strings.Contains(errOut, "Usage:") || !strings.Contains(errOut, "hutong "+cmd) {
			t.Errorf("%s --help: exit %d, output %q", cmd, code, errOut)
		}
	}
	if code, _, errOut := runCmd(t, nil, "frobnicate"); code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: %d %q", code, errOut)
	}
	if code, _, _ := runCmd(t, nil, "serve", "--no-such-flag"); code != 2 {
		t.Fatalf("bad flag: exit %d, want 2", code)
	}
	if code, _, errOut := runCmd(t, nil, "sandbox", "--time-scale", "0"); code != 1 || !strings.Contains(errOut, "--time-scale") {
		t.Fatalf("bad time scale: %d %q", code, errOut)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	code, _, errOut := runCmd(t, map[string]string{"HUTONG_DATA_DIR": t.TempDir(), "HUTONG_LOG_LEVEL": "chatty"}, "migrate")
	if code != 1 || !strings.Contains(errOut, "log_level") {
		t.Fatalf("exit %d, stderr %q: want the bad field named", code, errOut)
	}
}

func TestMigrateThenManageKeys(t *testing.T) {
	env := map[string]string{"HUTONG_DATA_DIR": t.TempDir()}
	// serve refuses a database whose schema is behind the binary.
	env["HUTONG_LISTEN"] = "127.0.0.1:0"
	if code, _, errOut := runCmd(t, env, "serve"); code != 1 || !strings.Contains(errOut, "hutong migrate") {
		t.Fatalf("serve on an unmigrated database: exit %d, stderr %q", code, errOut)
	}
	if code, out, errOut := runCmd(t, env, "migrate"); code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("migrate: %d %q %q", code, out, errOut)
	}
	code, out, errOut := runCmd(t, env, "apikey", "create", "--name", "Tea House")
	if code != 0 {
		t.Fatalf("apikey create: %d %q", code, errOut)
	}
	secret := regexp.MustCompile(`sk_test_[0-9A-Za-z]{40}`).FindString(out)
	merchant := regexp.MustCompile(`mer_[0-9A-Za-z]{24}`).FindString(out)
	keyID := regexp.MustCompile(`key_[0-9A-Za-z]{24}`).FindString(out)
	if secret == "" || merchant == "" || keyID == "" {
		t.Fatalf("apikey create printed %q", out)
	}
	code, out, _ = runCmd(t, env, "apikey", "list", "--merchant", merchant)
	if code != 0 || !strings.Contains(out, keyID) || !strings.Contains(out, "active") || strings.Contains(out, secret) {
		t.Fatalf("apikey list: %d %q (must show the key, never its secret)", code, out)
	}
	if code, _, errOut := runCmd(t, env, "apikey", "revoke", "--key", keyID); code != 0 {
		t.Fatalf("revoke: %d %q", code, errOut)
	}
	if _, out, _ = runCmd(t, env, "apikey", "list", "--merchant", merchant); !strings.Contains(out, "revoked") {
		t.Fatalf("after revoke: %q", out)
	}
	if code, _, errOut := runCmd(t, env, "apikey", "create", "--merchant", "mer_nope"); code != 1 || !strings.Contains(errOut, "mer_nope") {
		t.Fatalf("create for unknown merchant: %d %q", code, errOut)
	}
}

func TestServeAnswersAndStops(t *testing.T) {
	env := map[string]string{"HUTONG_DATA_DIR": t.TempDir()}
	if code, _, errOut := runCmd(t, env, "migrate"); code != 0 {
		t.Fatal(errOut)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	env["HUTONG_LISTEN"] = addr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		var out, errOut bytes.Buffer
		done <- run(ctx, []string{"serve"}, &out, &errOut, func(k string) string { return env[k] })
	}()
	var resp *http.Response
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err = http.Get("http://" + addr + "/healthz")
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d after shutdown, want 0", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal(errors.New("serve did not stop after its context was canceled"))
	}
}
