// Package pinentry asks a person for a PIN through a GnuPG pinentry program
// (pinentry-tty, pinentry-curses, pinentry-gnome3, …), speaking the Assuan
// protocol those programs understand.
//
// No maintained Go client of the pinentry protocol exists, so this package
// is one: it starts the program for each prompt, sends the option, title,
// description, prompt and error lines percent-escaped as Assuan requires,
// asks GETPIN, reads the answer and says BYE.
//
// # What the person sees
//
// The description names the token, the key and the tries left; after a PIN
// was refused it says so first ("The previous PIN was refused."). See
// [Request].
//
// # Faults
//
// A program that cannot start, dies, stops answering or answers something
// that is not Assuan ends the prompt with a one-line error; the program is
// killed when the context ends or the Prompter's Timeout passes. Errors and
// log records never hold the PIN, nor any line the program sent (a garbled
// line might).
package pinentry

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// maxLine is the longest line Assuan allows (1000 bytes with the newline).
const maxLine = 1000

// DefaultTimeout bounds one whole prompt when the Prompter sets none: long
// enough for a person to find the key, short enough that a pinentry stuck on
// a screen nobody looks at does not hold a request forever.
const DefaultTimeout = 2 * time.Minute

// ErrCancelled is returned when the person closed the prompt (pinentry's
// "Operation cancelled" error).
var ErrCancelled = errors.New("PIN entry cancelled")

// Prompter starts a pinentry program for each PIN. The zero value runs
// $PINENTRY_PROGRAM, or "pinentry" from PATH, without a terminal.
type Prompter struct {
	// Program is the pinentry to run; "" means Getenv("PINENTRY_PROGRAM"),
	// then "pinentry".
	Program string
	// Args are extra arguments for the program (never a secret).
	Args []string
	// TTYName, TTYType and LCCType are passed as OPTION ttyname, ttytype and
	// lc-ctype: the terminal a text pinentry opens. Left empty, they come
	// from $GPG_TTY (as with gpg-agent), $TERM and $LC_ALL, $LC_CTYPE or
	// $LANG; an option with no value is not sent.
	TTYName, TTYType, LCCType string
	// Title is the window title; "" means "auths-agent".
	Title string
	// Timeout bounds a whole prompt; 0 means DefaultTimeout.
	Timeout time.Duration
	// Env is the program's environment; nil means the agent's own.
	Env []string
	// Getenv reads PINENTRY_PROGRAM and the terminal's variables; nil
	// means os.Getenv.
	Getenv func(string) string
	// Logger receives debug records (program started, answer kinds); nil
	// discards them. PINs are never logged.
	Logger *slog.Logger
}

// Request is what one prompt says.
type Request struct {
	Token string // the token, e.g. "YubiKey 12345678" or "SoftHSM token ci"
	Key   string // the key on it, e.g. "slot 9c"; may be ""
	// TriesLeft is how many PIN tries the token has left; a negative value
	// means unknown.
	TriesLeft int
	// Refused says that the previous PIN for this token was refused.
	Refused bool
}

// Description is the text shown above the PIN field.
func (r Request) Description() string {
	var b strings.Builder
	if r.Refused {
		b.WriteString("The previous PIN was refused.\n")
	}
	b.WriteString("Enter the PIN of ")
	if r.Token == "" {
		b.WriteString("the token")
	} else {
		b.WriteString(r.Token)
	}
	if r.Key != "" {
		b.WriteString(" for " + r.Key)
	}
	b.WriteString(".")
	switch {
	case r.TriesLeft == 1:
		b.WriteString("\n1 try left before the PIN is blocked.")
	case r.TriesLeft >= 0:
		fmt.Fprintf(&b, "\n%d tries left.", r.TriesLeft)
	}
	return b.String()
}

// GetPIN runs the pinentry program once and returns the PIN entered.
func (p *Prompter) GetPIN(ctx context.Context, r Request) (string, error) {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	prog := p.program()
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	cmd := exec.CommandContext(ctx, prog, p.Args...)
	cmd.Env = p.Env
	cmd.Stderr = nil // a pinentry's diagnostics could echo anything
	cmd.WaitDelay = time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", fmt.Errorf("pinentry %s: %w", prog, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", fmt.Errorf("pinentry %s: %w", prog, err)
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("pinentry %s: cannot start: %w", prog, unwrapExec(err))
	}
	log.DebugContext(ctx, "pinentry started", "program", prog, "pid", cmd.Process.Pid)

	// The conversation runs in its own goroutine so that a program that
	// stops answering is cut off by ctx: killing it closes its pipes.
	type result struct {
		pin string
		err error
	}
	done := make(chan result, 1)
	go func() {
		c := &conn{w: stdin, r: bufio.NewReaderSize(stdout, maxLine+1)}
		pin, err := p.converse(c, r)
		done <- result{pin, err}
	}()
	var res result
	var waitErr error
	killed := false
	select {
	case res = <-done:
		stdin.Close()
		waitErr = cmd.Wait()
	case <-ctx.Done():
		// Wait closes the pipes (after WaitDelay at worst, should a child
		// of the program hold them), which ends the conversation.
		killed = true
		_ = cmd.Process.Kill()
		stdin.Close()
		waitErr = cmd.Wait()
		<-done
	}
	if killed {
		cerr := ctx.Err()
		if errors.Is(cerr, context.DeadlineExceeded) {
			return "", fmt.Errorf("pinentry %s: no answer within %v (killed)", prog, timeout)
		}
		return "", fmt.Errorf("pinentry %s: %w (killed)", prog, cerr)
	}
	if res.err != nil {
		if errors.Is(res.err, io.EOF) || errors.Is(res.err, io.ErrUnexpectedEOF) {
			return "", fmt.Errorf("pinentry %s: the program ended before answering (%s)", prog, exitText(waitErr))
		}
		if errors.Is(res.err, ErrCancelled) {
			return "", res.err
		}
		return "", fmt.Errorf("pinentry %s: %w", prog, res.err)
	}
	log.DebugContext(ctx, "pinentry answered", "program", prog)
	return res.pin, nil
}

// PINPrompt adapts the Prompter to an hsm.PINPrompt-shaped function: what
// becomes the token named in the prompt, with tries left unknown.
func (p *Prompter) PINPrompt() func(ctx context.Context, what string) (string, error) {
	return func(ctx context.Context, what string) (string, error) {
		return p.GetPIN(ctx, Request{Token: what, TriesLeft: -1})
	}
}

func (p *Prompter) getenv(k string) string {
	if p.Getenv == nil {
		return os.Getenv(k)
	}
	return p.Getenv(k)
}

// tty returns the terminal options to send.
func (p *Prompter) tty() (name, typ, ctype string) {
	name, typ, ctype = p.TTYName, p.TTYType, p.LCCType
	if name == "" {
		name = p.getenv("GPG_TTY")
	}
	if typ == "" {
		typ = p.getenv("TERM")
	}
	for _, k := range []string{"LC_ALL", "LC_CTYPE", "LANG"} {
		if ctype != "" {
			break
		}
		ctype = p.getenv(k)
	}
	return name, typ, ctype
}

func (p *Prompter) program() string {
	if p.Program != "" {
		return p.Program
	}
	if prog := p.getenv("PINENTRY_PROGRAM"); prog != "" {
		return prog
	}
	return "pinentry"
}

// converse runs the Assuan exchange: greeting, options, texts, GETPIN, BYE.
func (p *Prompter) converse(c *conn, r Request) (string, error) {
	if _, err := c.expectOK("the greeting"); err != nil {
		return "", err
	}
	title := p.Title
	if title == "" {
		title = "auths-agent"
	}
	ttyName, ttyType, lcCType := p.tty()
	cmds := [][2]string{
		{"OPTION", "ttyname=" + ttyName},
		{"OPTION", "ttytype=" + ttyType},
		{"OPTION", "lc-ctype=" + lcCType},
		{"SETTITLE", title},
		{"SETDESC", r.Description()},
		{"SETPROMPT", "PIN:"},
	}
	if r.Refused {
		cmds = append(cmds, [2]string{"SETERROR", "PIN refused"})
	}
	for _, cmd := range cmds {
		if cmd[0] == "OPTION" && strings.HasSuffix(cmd[1], "=") {
			continue // not set
		}
		if err := c.send(cmd[0], cmd[1]); err != nil {
			return "", err
		}
		if _, err := c.expectOK(cmd[0]); err != nil {
			if cmd[0] == "OPTION" || cmd[0] == "SETERROR" {
				continue // an option this pinentry does not know is not fatal
			}
			return "", err
		}
	}
	if err := c.send("GETPIN", ""); err != nil {
		return "", err
	}
	pin, err := c.expectOK("GETPIN")
	if err != nil {
		return "", err
	}
	_ = c.send("BYE", "") // the answer does not matter: we have the PIN
	if pin == "" {
		return "", errors.New("empty PIN entered")
	}
	return pin, nil
}

// conn is one Assuan connection, client side.
type conn struct {
	w io.Writer
	r *bufio.Reader
}

// send writes one command line; the argument is percent-escaped.
func (c *conn) send(cmd, arg string) error {
	line := cmd
	if arg != "" {
		line += " " + Escape(arg)
	}
	if len(line)+1 > maxLine {
		return fmt.Errorf("%s: line of %d bytes is longer than Assuan's %d", cmd, len(line)+1, maxLine)
	}
	if _, err := io.WriteString(c.w, line+"\n"); err != nil {
		return fmt.Errorf("%s: cannot write to the program: %w", cmd, unwrapPipe(err))
	}
	return nil
}

// expectOK reads answer lines up to OK or ERR, returning the data lines
// joined (decoded). Status and comment lines are skipped.
func (c *conn) expectOK(what string) (string, error) {
	var data strings.Builder
	for {
		line, err := c.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", fmt.Errorf("answer to %s: line longer than %d bytes", what, maxLine)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return "", io.ErrUnexpectedEOF
			}
			return "", err
		}
		s := strings.TrimSuffix(string(line[:len(line)-1]), "\r")
		kind, rest, _ := strings.Cut(s, " ")
		switch kind {
		case "OK":
			return data.String(), nil
		case "D":
			if data.Len()+len(rest) > maxLine {
				return "", fmt.Errorf("answer to %s: data longer than %d bytes", what, maxLine)
			}
			dec, err := Unescape(rest)
			if err != nil {
				return "", fmt.Errorf("answer to %s: data line: %w", what, err)
			}
			data.WriteString(dec)
		case "S", "#":
			continue
		case "ERR":
			code, _, _ := strings.Cut(rest, " ")
			// GPG_ERR_CANCELED (99) and GPG_ERR_FULLY_CANCELED (198) in
			// the pinentry source range.
			if n, err := strconv.ParseUint(code, 10, 32); err == nil && (n&0xffff == 99 || n&0xffff == 198) {
				return "", ErrCancelled
			}
			return "", fmt.Errorf("%s refused: error code %s", what, clipCode(code))
		case "INQUIRE":
			return "", fmt.Errorf("answer to %s: unexpected INQUIRE", what)
		default:
			return "", fmt.Errorf("answer to %s: not an Assuan line", what)
		}
	}
}

// Escape percent-escapes an Assuan argument: '%', CR, LF and the other
// control characters become %XX.
func Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch == '%' || ch < 0x20 || ch == 0x7f {
			fmt.Fprintf(&b, "%%%02X", ch)
			continue
		}
		b.WriteByte(ch)
	}
	return b.String()
}

// Unescape decodes %XX escapes of a data line.
func Unescape(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("incomplete percent-escape at byte %d", i+1)
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("malformed percent-escape at byte %d", i+1)
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), nil
}

func clipCode(s string) string {
	for _, r := range s {
		if r < '0' || r > '9' {
			return "(not a number)"
		}
	}
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}

func exitText(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ProcessState.String()
	}
	if err != nil {
		return err.Error()
	}
	return "exit status 0"
}

func unwrapExec(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee.Err
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func unwrapPipe(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
