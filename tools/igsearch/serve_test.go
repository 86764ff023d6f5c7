package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeHelperProcess is not a test: it is `igsearch ARGS...` run in a
// child process by the tests below (the os/exec helper-process pattern), so
// that they can send it real signals.
func TestServeHelperProcess(t *testing.T) {
	if os.Getenv("IGSEARCH_HELPER_ARGS") == "" {
		t.Skip("helper process for TestIndexServeSIGTERM")
	}
	var args []string
	json.Unmarshal([]byte(os.Getenv("IGSEARCH_HELPER_ARGS")), &args)
	os.Exit(run(args))
}

// startIgsearch starts `igsearch ARGS...` in a child process and returns it
// with its stderr.
func startIgsearch(t *testing.T, args ...string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	a, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeHelperProcess$")
	cmd.Env = append(os.Environ(), "IGSEARCH_HELPER_ARGS="+string(a))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, bufio.NewReader(stderr)
}

// TestIndexServeSIGTERM: `index serve` with a stalled upload open exits 0
// on SIGTERM, answering the stalled upload 503 (#17: it exited 1 after
// 10 s). It also answers Search-R1's empty turn.
func TestIndexServeSIGTERM(t *testing.T) {
	tmp := t.TempDir()
	corpus := filepath.Join(tmp, "c.jsonl")
	os.WriteFile(corpus, []byte(`{"id": "p1", "contents": "Paris\nParis is the capital of France."}`+"\n"+
		`{"id": "p2", "contents": "\"Rome\"\nRome is the capital of Italy."}`+"\n"), 0o644)
	ix := filepath.Join(tmp, "ix")
	if code, _ := capture(t, "index", "build", "--corpus", corpus, "--out", ix); code != 0 {
		t.Fatalf("index build: exit %d", code)
	}
	cmd, stderr := startIgsearch(t, "index", "serve", "--index", ix, "--addr", "127.0.0.1:0", "--shutdown-grace", "30s")
	var addr string
	for addr == "" {
		line, err := stderr.ReadString('\n')
		if err != nil {
			t.Fatalf("serve ended before listening: %v", err)
		}
		if _, a, ok := strings.Cut(line, "listening on http://"); ok {
			addr = strings.TrimSpace(a)
		}
	}
	go io.Copy(io.Discard, stderr)
	resp, err := http.Post("http://"+addr+"/retrieve", "application/json", strings.NewReader(`{"queries": [], "topk": null, "return_scores": true}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != `{"result": []}` {
		t.Errorf("empty turn: %d %s", resp.StatusCode, b)
	}
	resp, err = http.Post("http://"+addr+"/retrieve", "application/json", strings.NewReader(`{"queries": ["capital France"], "topk": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"contents":"Paris\nParis is the capital of France."`) {
		t.Errorf("contents not verbatim: %s", b)
	}

	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST /retrieve HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"queries\": [")
	time.Sleep(200 * time.Millisecond) // let the server start reading the body
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	slow.SetReadDeadline(time.Now().Add(30 * time.Second))
	status, _ := bufio.NewReader(slow).ReadString('\n')
	err = cmd.Wait()
	t.Logf("SIGTERM → exit in %s (%v); the stalled upload got %q", time.Since(start).Round(time.Millisecond), err, strings.TrimSpace(status))
	if err != nil {
		t.Errorf("exit after SIGTERM: %v, want 0", err)
	}
	if !strings.HasPrefix(status, "HTTP/1.1 503") {
		t.Errorf("stalled upload at SIGTERM: %q, want 503", status)
	}
}

func TestIndexServeFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--max-queries", "0"},
		{"--topk", "5", "--max-topk", "3"},
		{"--read-timeout", "-1s"},
	} {
		if code, _ := capture(t, append([]string{"index", "serve", "--index", "nowhere"}, args...)...); code != 2 {
			t.Errorf("index serve %v: exit %d, want 2", args, code)
		}
	}
}
