package transport

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

// sudo with a password, over an SSH exec channel (no tty, so sudo may ask on
// every command). The password goes to sudo's stdin only when sudo prompts
// for it, recognised by a prompt carrying the command's random marker; the
// command's own stdin follows only once the command runs, which a shell
// between sudo and the command announces with a second marker on stderr. So
// the password never reaches a command, a command line or a log, and it is
// not sent at all when sudo does not ask (NOPASSWD rules, a cached
// credential). A second prompt means sudo rejected it: stdin is closed and
// sudo fails, instead of the password being sent again.

func sudoPrompt(marker string) string { return "[k4t-sudo-" + marker + "]" }
func sudoGo(marker string) string     { return "[k4t-go-" + marker + "]\n" }

// sudoLine wraps line (the words of a command) for sudo -S with the
// handshake's prompt, and a shell that announces the command's start.
func sudoLine(line, marker string) string {
	announce := fmt.Sprintf(`printf '%%s' %s >&2; exec "$@"`, ShellQuote(sudoGo(marker)))
	return fmt.Sprintf("sudo -S -p %s sh -c %s k4t %s", ShellQuote(sudoPrompt(marker)), ShellQuote(announce), line)
}

type sudoHandshake struct {
	password []byte
	marker   string
}

// start returns the writer for the session's stderr: it watches for the
// markers, answers the prompt on in, then copies stdin to in and closes it.
// Everything else reaches out, markers removed.
func (s *sudoHandshake) start(in io.WriteCloser, stdin []byte, out io.Writer) *sudoStderr {
	return &sudoStderr{s: s, in: in, stdin: stdin, out: out}
}

type sudoStderr struct {
	s       *sudoHandshake
	in      io.WriteCloser
	stdin   []byte
	out     io.Writer
	mu      sync.Mutex
	pending []byte
	prompts int
	running bool
}

func (w *sudoStderr) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running {
		return w.out.Write(p)
	}
	w.pending = append(w.pending, p...)
	prompt, run := []byte(sudoPrompt(w.s.marker)), []byte(sudoGo(w.s.marker))
	for {
		if i := bytes.Index(w.pending, prompt); i >= 0 {
			w.pending = append(w.pending[:i], w.pending[i+len(prompt):]...)
			if w.prompts++; w.prompts == 1 {
				pw := append(append([]byte{}, w.s.password...), '\n')
				go w.in.Write(pw) // never block the session's output
			} else {
				w.in.Close() // rejected: sudo gets EOF and fails
			}
			continue
		}
		if i := bytes.Index(w.pending, run); i >= 0 {
			w.pending = append(w.pending[:i], w.pending[i+len(run):]...)
			w.running = true
			go func(in io.WriteCloser, stdin []byte) {
				if len(stdin) > 0 {
					in.Write(stdin)
				}
				in.Close()
			}(w.in, w.stdin)
			_, err := w.out.Write(w.pending)
			w.pending = nil
			return len(p), err
		}
		break
	}
	// Keep what may be the start of a marker; pass on the rest.
	keep := max(len(prompt), len(run))
	if n := len(w.pending) - keep; n > 0 {
		if _, err := w.out.Write(w.pending[:n]); err != nil {
			return 0, err
		}
		w.pending = w.pending[n:]
	}
	return len(p), nil
}

// flush passes on what was held back: the session ended before the command
// ran (sudo failed), and its last words matter.
func (w *sudoStderr) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.out.Write(w.pending)
	w.pending = nil
}
