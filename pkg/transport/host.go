// Package transport is the only way k4t touches a remote host. Host is the
// interface every phase uses; ssh.go implements it over one SSH connection per
// host, fake.go in memory for tests.
package transport

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"time"
)

// Host is a connected machine. Implementations are safe for concurrent use.
type Host interface {
	// Name is the inventory name, used as the log prefix.
	Name() string
	// Run runs a shell command (sh -c) with root rights (through sudo when
	// the login user is not root). A non-zero exit is a *CmdError.
	Run(ctx context.Context, cmd Cmd) (Result, error)
	// Put writes a file atomically (temp file, fsync, rename; mode and owner
	// set). It skips the write and returns changed=false when the remote
	// file already has the same sha256, mode and owner.
	Put(ctx context.Context, f File) (changed bool, err error)
	// Get reads a remote file. A missing file is an error wrapping fs.ErrNotExist.
	Get(ctx context.Context, path string) ([]byte, error)
	// Stat returns the sha256, mode and owner of a remote file; exists=false
	// (and no error) when it is absent.
	Stat(ctx context.Context, path string) (FileInfo, error)
	// StatMany is Stat of several files in one round trip, in order.
	StatMany(ctx context.Context, paths []string) ([]FileInfo, error)
	// Close ends the connection.
	Close() error
}

// Tunneler is a Host that opens TCP connections from its own side (SSH
// direct-tcpip), e.g. to reach kube-apiserver where only SSH is open.
type Tunneler interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Cmd is one remote command.
type Cmd struct {
	// Command is run by sh -c. Keep it short: scripts are templates.
	Command string
	// Stdin, if set, is fed to the command.
	Stdin []byte
	// Timeout bounds the command; zero means DefaultTimeout.
	Timeout time.Duration
	// Secret marks Stdin (and the output) as secret: never logged.
	Secret bool
	// ReadOnly marks a command that changes nothing on the host (a probe,
	// a health check), so that, should the connection drop while it runs,
	// it is run once more on a new connection instead of failing the run.
	ReadOnly bool
}

// ErrConnDropped is the cause of a command's failure when the connection
// it ran on died before the command's exit status arrived: whether the
// command ran, and how far, is unknown.
var ErrConnDropped = errors.New("the connection dropped while the command ran")

// DefaultTimeout bounds a command that names no timeout.
const DefaultTimeout = 5 * time.Minute

// Result is what a command printed.
type Result struct {
	Stdout, Stderr []byte
	Duration       time.Duration
}

// File is a file to put on a host.
type File struct {
	Path string
	Mode fs.FileMode
	// Owner is "user:group"; empty means root:root.
	Owner string
	// Content is the data, or nil when Source is set.
	Content []byte
	// Source is a local file streamed to the host (for large artifacts).
	Source string
	// SHA256 of the content, hex; computed when empty.
	SHA256 string
}

// FileInfo is what Stat found.
type FileInfo struct {
	Exists bool
	SHA256 string
	Mode   fs.FileMode
	Owner  string
}

// CmdError is a command that ran and failed.
type CmdError struct {
	Host     string
	Command  string
	ExitCode int
	Stderr   string
}

func (e *CmdError) Error() string {
	msg := e.Stderr
	if len(msg) > 400 {
		msg = "…" + msg[len(msg)-400:]
	}
	return fmt.Sprintf("%s: command %q exited %d: %s", e.Host, e.Command, e.ExitCode, msg)
}
