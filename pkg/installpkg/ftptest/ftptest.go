// Package ftptest runs a real FTP server, Debian's vsftpd, for tests of ftp:// install
// packages: one user with a password, passive mode, files served from a directory.
//
// vsftpd authenticates through PAM with the service file /etc/pam.d/vsftpd and looks
// users up in /etc/passwd. Rather than change the host, the server runs in a private
// mount namespace (unshare --mount) in which a generated /etc/pam.d (pam_unix only),
// /etc/passwd and /etc/shadow (the host's, plus the test user) are bind-mounted; the host
// sees none of it. The test user is a vsftpd guest mapped to the "ftp" account that the
// vsftpd package creates, so no account is added anywhere.
//
// This needs root (the namespace and bind mounts), and vsftpd, unshare and openssl
// (scripts/test-env.sh apt installs them). Available says what is missing.
package ftptest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Config of a server; zero values take the defaults.
type Config struct {
	// ListenIP is the address to serve on (default 127.0.0.1). Passive data connections
	// are announced on the same address.
	ListenIP string
	// User and Password of the one account (defaults: "edge" and a random password).
	User, Password string
	// Wrap runs vsftpd inside another command, e.g. {"nsenter", "--net=/run/netns/x"} to
	// serve inside a test network namespace. ListenIP must then be an address of that
	// namespace that the test process can reach (the harness's veth or bridge): Start
	// waits for the server's greeting there.
	Wrap []string
}

// Server is a running vsftpd.
type Server struct {
	// Addr is host:port of the control connection.
	Addr string
	// Root is the directory served as "/": write the files to serve here.
	Root string
	// User and Password of the account.
	User, Password string

	dir    string
	cmd    *exec.Cmd
	exited chan error
	log    string
}

const (
	startBound = 15 * time.Second
	stopBound  = 10 * time.Second
	guestUser  = "ftp"
)

// Available returns nil when a server can be started here, or what is missing.
func Available() error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (for a private mount namespace)")
	}
	for _, b := range []string{"vsftpd", "unshare", "openssl", "mount"} {
		if _, err := exec.LookPath(b); err != nil {
			if _, err := os.Stat("/usr/sbin/" + b); err != nil {
				missing = append(missing, b)
			}
		}
	}
	if _, _, err := lookupUser(guestUser); err != nil {
		missing = append(missing, "the ftp user (made by the vsftpd package)")
	}
	if len(missing) > 0 {
		hint := ""
		if len(missing) > 1 || os.Geteuid() == 0 {
			hint = " (scripts/test-env.sh apt installs the packages)"
		}
		return fmt.Errorf("a vsftpd test server needs %s%s", strings.Join(missing, ", "), hint)
	}
	return nil
}

// Skip skips t when no server can run, or fails it when EDGEADM_E2E=1 (CI), where
// skipping would hide a missing dependency.
func Skip(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("EDGEADM_E2E") == "1" {
			t.Fatalf("EDGEADM_E2E=1 but %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
}

// Start runs a server for the test and stops it (by PID) when the test ends.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	Skip(t)
	s, err := Run(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stopping vsftpd: %v", err)
		}
		if t.Failed() {
			t.Logf("vsftpd protocol log (passwords are masked by vsftpd):\n%s", s.Log())
		}
	})
	return s
}

// Run starts a server whose files (configuration, served root, log) live in dir, for
// callers that are not tests (benchmarks); the caller must Stop it. Start is for tests.
func Run(dir string, cfg Config) (*Server, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if cfg.ListenIP == "" {
		cfg.ListenIP = "127.0.0.1"
	}
	if cfg.User == "" {
		cfg.User = "edge"
	}
	if cfg.Password == "" {
		cfg.Password = randomHex(12)
	}
	s := &Server{Root: filepath.Join(dir, "root"), User: cfg.User, Password: cfg.Password, dir: dir,
		log: filepath.Join(dir, "vsftpd.log")}
	if err := s.writeFiles(cfg); err != nil {
		return nil, err
	}
	// The port is picked by binding :0 and released before vsftpd binds it; another
	// process may take it in between, so a failed start is retried on a new port.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort(cfg)
		if err != nil {
			return nil, err
		}
		if lastErr = s.run(cfg, port); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

func (s *Server) writeFiles(cfg Config) error {
	for _, d := range []string{s.Root, filepath.Join(s.dir, "empty"), filepath.Join(s.dir, "pam.d")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		// t.TempDir is 0700; vsftpd drops to the ftp user inside Root.
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
	}
	hash, err := cryptPassword(cfg.Password)
	if err != nil {
		return err
	}
	if strings.ContainsAny(cfg.User, ":\n/") {
		return fmt.Errorf("user name %q cannot go into /etc/passwd", cfg.User)
	}
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return err
	}
	shadow, err := os.ReadFile("/etc/shadow")
	if err != nil {
		return err
	}
	passwd = append(ensureNL(passwd), fmt.Sprintf("%s:x:65534:65534:edgeadm test:/nonexistent:/usr/sbin/nologin\n", cfg.User)...)
	shadow = append(ensureNL(shadow), fmt.Sprintf("%s:%s:19000:0:99999:7:::\n", cfg.User, hash)...)
	files := map[string]struct {
		data []byte
		mode os.FileMode
	}{
		"passwd": {passwd, 0o644},
		"shadow": {shadow, 0o640},
		// pam_unix only: the host's common-* stacks may want modules or files this
		// namespace lacks. nodelay: a wrong password fails at once, not after 2 s.
		"pam.d/vsftpd": {[]byte("auth required pam_unix.so nodelay\naccount required pam_unix.so\nsession required pam_permit.so\n"), 0o644},
	}
	for name, f := range files {
		if err := os.WriteFile(filepath.Join(s.dir, name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) config(cfg Config, port int) string {
	return strings.Join([]string{
		"listen=YES",
		"listen_ipv6=NO",
		"listen_address=" + cfg.ListenIP,
		"listen_port=" + strconv.Itoa(port),
		"background=NO",
		"anonymous_enable=NO",
		"local_enable=YES",
		"guest_enable=YES",
		"guest_username=" + guestUser,
		"local_root=" + s.Root,
		"chroot_local_user=YES",
		"write_enable=NO",
		"pam_service_name=vsftpd",
		"check_shell=NO",
		"userlist_enable=NO",
		"secure_chroot_dir=" + filepath.Join(s.dir, "empty"),
		"pasv_enable=YES",
		"pasv_address=" + cfg.ListenIP,
		// 0: any free port for passive data connections.
		"pasv_min_port=0",
		"pasv_max_port=0",
		"port_enable=NO",
		"delay_failed_login=0",
		"seccomp_sandbox=NO",
		"isolate=NO",
		"isolate_network=NO",
		"xferlog_enable=YES",
		"vsftpd_log_file=" + s.log,
		"log_ftp_protocol=YES",
		"syslog_enable=NO",
		"",
	}, "\n")
}

// run starts vsftpd on port and waits, bounded, until it greets.
func (s *Server) run(cfg Config, port int) error {
	conf := filepath.Join(s.dir, "vsftpd.conf")
	if err := os.WriteFile(conf, []byte(s.config(cfg, port)), 0o600); err != nil {
		return err
	}
	script := `set -e
mount --bind "$1" /etc/pam.d
mount --bind "$2" /etc/passwd
mount --bind "$3" /etc/shadow
exec vsftpd "$4"`
	args := append([]string{}, cfg.Wrap...)
	args = append(args, "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh",
		filepath.Join(s.dir, "pam.d"), filepath.Join(s.dir, "passwd"), filepath.Join(s.dir, "shadow"), conf)
	var out bytes.Buffer
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting vsftpd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.cmd, s.exited = cmd, exited
	s.Addr = net.JoinHostPort(cfg.ListenIP, strconv.Itoa(port))

	deadline := time.Now().Add(startBound)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := greets(s.Addr); err == nil {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("vsftpd exited at start (%v): %s", err, strings.TrimSpace(out.String()))
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("vsftpd did not answer on %s within %s: %s", s.Addr, startBound, strings.TrimSpace(out.String()))
		}
	}
}

// greets connects, reads the 220 greeting and hangs up.
func greets(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "220") {
		return fmt.Errorf("greeting %q", line)
	}
	return nil
}

// Stop ends the server's process group (its listener and any session processes) by
// PID: SIGTERM, then SIGKILL if it has not gone within the bound.
func (s *Server) Stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	pgid := s.cmd.Process.Pid
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	select {
	case <-s.exited:
	case <-time.After(stopBound):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.exited
	}
	// Session processes of this group that outlived the listener.
	syscall.Kill(-pgid, syscall.SIGKILL)
	s.cmd = nil
	return nil
}

// URL is the ftp:// URL of a file under Root, with the user but no password.
func (s *Server) URL(name string) string {
	return fmt.Sprintf("ftp://%s@%s/%s", s.User, s.Addr, strings.TrimPrefix(name, "/"))
}

// Log is vsftpd's protocol log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// freePort asks the kernel for a free port on ListenIP. Inside another namespace (Wrap)
// that address is not ours to bind, so a random high port is taken; a clash makes vsftpd
// exit and the start is retried.
func freePort(cfg Config) (int, error) {
	if len(cfg.Wrap) > 0 {
		var b [2]byte
		rand.Read(b[:])
		return 20000 + (int(b[0])<<8|int(b[1]))%40000, nil
	}
	ip := cfg.ListenIP
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("finding a free port on %s: %w", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// cryptPassword makes a SHA-512 crypt(3) hash for /etc/shadow. The password goes to
// openssl on stdin, not on its command line.
func cryptPassword(pw string) (string, error) {
	cmd := exec.Command("openssl", "passwd", "-6", "-stdin")
	cmd.Stdin = strings.NewReader(pw + "\n")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("openssl passwd: %w", err)
	}
	h := strings.TrimSpace(string(out))
	if !strings.HasPrefix(h, "$6$") {
		return "", fmt.Errorf("openssl passwd printed %q", h)
	}
	return h, nil
}

func lookupUser(name string) (uid, gid int, err error) {
	data, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 4 && f[0] == name {
			uid, _ = strconv.Atoi(f[2])
			gid, _ = strconv.Atoi(f[3])
			return uid, gid, nil
		}
	}
	return 0, 0, fmt.Errorf("no user %s", name)
}

func ensureNL(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return append(b, '\n')
	}
	return b
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
