package transport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"sync"
)

// Fake is an in-memory Host for unit tests of phases. Files live in a map;
// commands are answered by scripted responses (first match wins, in the
// order added), then OnRun, then succeed with no output. Every call is
// logged so tests can assert exactly what was done.
type Fake struct {
	HostName string

	mu    sync.Mutex
	files map[string]File
	rules []fakeRule

	// OnRun, if set, answers commands no scripted response matched.
	OnRun func(cmd Cmd) (Result, error)

	// Runs, Puts and Gets log every call; Writes lists the paths a Put
	// actually changed (content, mode or owner differed).
	Runs   []Cmd
	Puts   []File
	Gets   []string
	Writes []string
	Closed bool
}

type fakeRule struct {
	prefix string
	re     *regexp.Regexp
	res    Result
	err    error
	code   int
}

// NewFake returns an empty fake host.
func NewFake(name string) *Fake {
	return &Fake{HostName: name, files: map[string]File{}}
}

// Respond answers commands starting with prefix with stdout.
func (f *Fake) Respond(prefix, stdout string) *Fake {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, fakeRule{prefix: prefix, res: Result{Stdout: []byte(stdout)}})
	return f
}

// RespondRegexp answers commands matching re with stdout.
func (f *Fake) RespondRegexp(re, stdout string) *Fake {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, fakeRule{re: regexp.MustCompile(re), res: Result{Stdout: []byte(stdout)}})
	return f
}

// Fail makes commands starting with prefix exit with code and stderr (a *CmdError).
func (f *Fake) Fail(prefix string, code int, stderr string) *Fake {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, fakeRule{prefix: prefix, code: code, res: Result{Stderr: []byte(stderr)}})
	return f
}

// SetFile places a file on the fake host without logging a Put.
func (f *Fake) SetFile(file File) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[file.Path] = normFakeFile(file)
}

// File returns the file at path.
func (f *Fake) File(path string) (File, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	x, ok := f.files[path]
	return x, ok
}

// Commands returns the command lines run so far.
func (f *Fake) Commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.Runs))
	for i, r := range f.Runs {
		out[i] = r.Command
	}
	return out
}

func (f *Fake) Name() string { return f.HostName }

func (f *Fake) Run(ctx context.Context, cmd Cmd) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	f.mu.Lock()
	f.Runs = append(f.Runs, cmd)
	var rule *fakeRule
	for i := range f.rules {
		r := &f.rules[i]
		if r.re != nil && r.re.MatchString(cmd.Command) || r.re == nil && strings.HasPrefix(cmd.Command, r.prefix) {
			rule = r
			break
		}
	}
	onRun := f.OnRun
	f.mu.Unlock()
	switch {
	case rule != nil:
		if rule.code != 0 {
			return rule.res, &CmdError{Host: f.HostName, Command: trimCommand(cmd.Command), ExitCode: rule.code, Stderr: string(rule.res.Stderr)}
		}
		return rule.res, rule.err
	case onRun != nil:
		return onRun(cmd)
	}
	return Result{}, nil
}

func normFakeFile(file File) File {
	if file.Source != "" && file.Content == nil {
		b, err := os.ReadFile(file.Source)
		if err == nil {
			file.Content = b
		}
	}
	file.Content = append([]byte(nil), file.Content...)
	s := sha256.Sum256(file.Content)
	file.SHA256 = hex.EncodeToString(s[:])
	if file.Owner == "" {
		file.Owner = "root:root"
	}
	if file.Mode == 0 {
		file.Mode = 0o644
	}
	return file
}

func (f *Fake) Put(ctx context.Context, file File) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if file.Source != "" {
		if _, err := os.Stat(file.Source); err != nil {
			return false, fmt.Errorf("%s: put %s: %w", f.HostName, file.Path, err)
		}
	}
	n := normFakeFile(file)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Puts = append(f.Puts, n)
	if cur, ok := f.files[file.Path]; ok && cur.SHA256 == n.SHA256 && cur.Mode == n.Mode && cur.Owner == n.Owner {
		return false, nil
	}
	f.files[file.Path] = n
	f.Writes = append(f.Writes, file.Path)
	return true, nil
}

func (f *Fake) Get(ctx context.Context, path string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Gets = append(f.Gets, path)
	x, ok := f.files[path]
	if !ok {
		return nil, fmt.Errorf("%s: reading %s: %w", f.HostName, path, fs.ErrNotExist)
	}
	return append([]byte(nil), x.Content...), nil
}

func (f *Fake) Stat(ctx context.Context, path string) (FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return FileInfo{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	x, ok := f.files[path]
	if !ok {
		return FileInfo{}, nil
	}
	return FileInfo{Exists: true, SHA256: x.SHA256, Mode: x.Mode, Owner: x.Owner}, nil
}

func (f *Fake) StatMany(ctx context.Context, paths []string) ([]FileInfo, error) {
	var out []FileInfo
	for _, p := range paths {
		fi, err := f.Stat(ctx, p)
		if err != nil {
			return nil, err
		}
		out = append(out, fi)
	}
	return out, nil
}

func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Closed = true
	return nil
}

var _ Host = (*Fake)(nil)
var _ Host = (*sshHost)(nil)
