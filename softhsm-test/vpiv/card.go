package vpiv

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"time"
)

// ATR is the answer to reset of a YubiKey 5 (T=1, historical bytes "YubiKey@").
var ATR = []byte{
	0x3b, 0xfd, 0x13, 0x00, 0x00, 0x81, 0x31, 0xfe, 0x15, 0x80, 0x73, 0xc0,
	0x21, 0xc0, 0x57, 0x59, 0x75, 0x62, 0x69, 0x4b, 0x65, 0x79, 0x40,
}

// aidPIV is the full PIV application identifier; a SELECT may name a prefix
// of at least its first five bytes (the RID and the PIX start).
var aidPIV = []byte{0xa0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00}

// selectAnswer is the application property template a YubiKey answers SELECT
// PIV with.
var selectAnswer = []byte{
	0x61, 0x11, 0x4f, 0x06, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
	0x79, 0x07, 0x4f, 0x05, 0xa0, 0x00, 0x00, 0x03, 0x08,
}

const (
	// maxChain bounds the data of one chained command.
	maxChain = 16 * 1024
	// maxResponseChunk is the most data one response APDU carries before the
	// card answers 61xx and waits for GET RESPONSE.
	maxResponseChunk = 256
	// touchCache is how long a touch satisfies a "cached" touch policy.
	touchCache = 15 * time.Second
)

// Config configures a Card.
type Config struct {
	// Serial is the card's serial number (GET SERIAL, attestation).
	Serial uint32
	// Version is the firmware version GET VERSION reports; zero means 5.7.1.
	Version [3]byte
	// SelectOnly makes a card that answers SELECT with 9000 and every other
	// command with 6d00: something that is not a YubiKey.
	SelectOnly bool
	// Latency is added to every signature to emulate a real device.
	Latency time.Duration
	// TouchDelay is how long after a signature request the touch "arrives"
	// for keys whose touch policy asks for one.
	TouchDelay time.Duration
	// TouchTimeout, when not zero, is how long the card waits for a touch
	// before it refuses the signature with 6982, as a YubiKey does after
	// about 15 s: a TouchDelay past it is a touch that never comes.
	TouchTimeout time.Duration
	// StatePath is the JSON state file; empty keeps the state in memory.
	StatePath string
	// Trace, if set, receives one line per control byte and APDU. PINs,
	// PUKs and key material are redacted.
	Trace io.Writer
	// Rand is the source of randomness; nil means crypto/rand.
	Rand io.Reader
	// Now and Sleep stand for the clock; nil means time.Now and time.Sleep.
	Now   func() time.Time
	Sleep func(time.Duration)
}

// Card is a virtual YubiKey PIV card. Its methods are safe for concurrent
// use, though a reader drives one card from one connection.
type Card struct {
	mu   sync.Mutex
	cfg  Config
	st   *state
	sess session
	// lastTouch is when a touch last arrived (for "cached" touch).
	lastTouch time.Time
	// internalErrors counts panics Transmit recovered from; tests and the
	// fuzz target require it to stay zero.
	internalErrors int
}

// session is the volatile state a power cycle or reset clears.
type session struct {
	selected    bool
	pinVerified bool
	// pinFresh is set by a successful VERIFY and used up by the next
	// operation with PIN policy "always".
	pinFresh bool
	mgmtAuth bool
	witness  []byte // pending management-key witness
	chain    []byte // data of an unfinished command chain
	chainHdr [3]byte
	chaining bool
	pending  []byte // response data waiting for GET RESPONSE
}

// New makes a card from cfg, loading cfg.StatePath if it exists and creating
// a factory-fresh card (with its attestation CA) otherwise.
func New(cfg Config) (*Card, error) {
	if cfg.Version == [3]byte{} {
		cfg.Version = [3]byte{5, 7, 1}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = time.Sleep
	}
	c := &Card{cfg: cfg}
	var err error
	if cfg.StatePath != "" {
		if c.st, err = loadState(cfg.StatePath); err != nil {
			return nil, fmt.Errorf("loading card state: %w", err)
		}
	}
	if c.st != nil && c.st.Serial != cfg.Serial {
		return nil, fmt.Errorf("state file %s belongs to card %d, not %d", cfg.StatePath, c.st.Serial, cfg.Serial)
	}
	dirty := false
	if c.st == nil {
		if c.st, err = newState(cfg.Serial, cfg.Rand); err != nil {
			return nil, err
		}
		dirty = true
	}
	if len(c.st.Attestation.Cert) == 0 {
		if err := c.makeAttestationKey(); err != nil {
			return nil, fmt.Errorf("creating attestation key: %w", err)
		}
		dirty = true
	}
	if dirty {
		if err := c.save(); err != nil {
			return nil, fmt.Errorf("saving card state: %w", err)
		}
	}
	return c, nil
}

// Serial returns the card's serial number.
func (c *Card) Serial() uint32 { return c.cfg.Serial }

// ATR returns the answer to reset.
func (c *Card) ATR() []byte { return append([]byte(nil), ATR...) }

// PowerOn, PowerOff and Reset clear the session: PIN and management-key
// authentication, pending chains and the selected application.
func (c *Card) PowerOn()  { c.control("POWER ON") }
func (c *Card) PowerOff() { c.control("POWER OFF") }
func (c *Card) Reset()    { c.control("RESET") }

func (c *Card) control(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sess = session{}
	c.tracef("ctrl %s", name)
}

// save writes the state file, if any.
func (c *Card) save() error {
	if c.cfg.StatePath == "" {
		return nil
	}
	return c.st.save(c.cfg.StatePath)
}

// commit saves the state after a change and turns a failure into 6581.
func (c *Card) commit(r response) response {
	if err := c.save(); err != nil {
		c.tracef("error saving state: %v", err)
		return status(swMemoryFailure)
	}
	return r
}

func (c *Card) tracef(format string, args ...any) {
	if c.cfg.Trace == nil {
		return
	}
	fmt.Fprintf(c.cfg.Trace, "%s [card %d] %s\n", c.cfg.Now().UTC().Format("15:04:05.000000"), c.cfg.Serial, fmt.Sprintf(format, args...))
}

// Transmit answers one command APDU with a response APDU (data, SW1, SW2).
// It never panics: a malformed APDU gets a status word.
func (c *Card) Transmit(apdu []byte) (out []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	start := c.cfg.Now()
	cmd, sw := parseCommand(apdu)
	var r response
	func() {
		defer func() {
			if p := recover(); p != nil {
				c.tracef("internal error: %v", p)
				c.internalErrors++
				c.sess = session{selected: c.sess.selected}
				r = status(swNoPreciseDiagnos)
			}
		}()
		if sw != swOK {
			r = status(sw)
			return
		}
		r = c.transmit(cmd)
	}()
	out = r.bytes()
	c.trace(apdu, cmd, out, start)
	return out
}

// trace logs one exchange, redacting secrets.
func (c *Card) trace(apdu []byte, cmd command, out []byte, start time.Time) {
	if c.cfg.Trace == nil {
		return
	}
	in := hex.EncodeToString(apdu)
	if len(apdu) > 5 && secretData(cmd.ins) {
		in = hex.EncodeToString(apdu[:5]) + fmt.Sprintf("<%d bytes redacted>", len(apdu)-5)
	}
	resp := hex.EncodeToString(out)
	if cmd.ins == insGetData && bytes.Contains(cmd.data, []byte{0x5f, 0xc1, 0x09}) && len(out) > 2 {
		resp = fmt.Sprintf("<%d bytes redacted>", len(out)-2) + hex.EncodeToString(out[len(out)-2:])
	}
	name := "?"
	if len(apdu) >= 2 {
		name = insName(apdu[1])
	}
	c.tracef("C-APDU %s  ->  R-APDU %s   %s  (%s)", in, resp, name, c.cfg.Now().Sub(start).Round(time.Microsecond))
}

// transmit handles chaining around dispatch.
func (c *Card) transmit(cmd command) response {
	if cmd.cla != 0x00 && cmd.cla != claChain {
		if cmd.cla&0x0c != 0 && cmd.cla&0x80 == 0 {
			return status(swSecureMessaging)
		}
		return status(swClaNotSupported)
	}
	if c.cfg.SelectOnly {
		if cmd.ins == insSelect && cmd.cla == 0 {
			return c.selectApp(cmd)
		}
		return status(swInsNotSupported)
	}
	if cmd.ins == insGetResponse && cmd.cla == 0 {
		return c.getResponse(cmd)
	}
	c.sess.pending = nil

	hdr := [3]byte{cmd.ins, cmd.p1, cmd.p2}
	if c.sess.chaining && c.sess.chainHdr != hdr {
		c.sess.chaining, c.sess.chain = false, nil
	}
	if cmd.cla == claChain {
		if len(c.sess.chain)+len(cmd.data) > maxChain {
			c.sess.chaining, c.sess.chain = false, nil
			return status(swWrongLength)
		}
		c.sess.chaining, c.sess.chainHdr = true, hdr
		c.sess.chain = append(c.sess.chain, cmd.data...)
		return ok(nil)
	}
	if c.sess.chaining {
		cmd.data = append(c.sess.chain, cmd.data...)
		c.sess.chaining, c.sess.chain = false, nil
	}
	r := c.dispatch(cmd)
	if len(r.data) > maxResponseChunk && r.sw == swOK {
		c.sess.pending = r.data[maxResponseChunk:]
		return response{data: r.data[:maxResponseChunk], sw: moreData(len(c.sess.pending))}
	}
	return r
}

func moreData(n int) uint16 {
	if n >= 256 {
		return swMoreData
	}
	return swMoreData | uint16(n)
}

// getResponse hands out the next chunk of a long answer.
func (c *Card) getResponse(cmd command) response {
	if cmd.p1 != 0 || cmd.p2 != 0 {
		c.sess.pending = nil
		return status(swWrongP1P2)
	}
	if len(c.sess.pending) == 0 {
		return status(swConditions)
	}
	n := maxResponseChunk
	if cmd.le > 0 && cmd.le < n {
		n = cmd.le
	}
	if n >= len(c.sess.pending) {
		d := c.sess.pending
		c.sess.pending = nil
		return ok(d)
	}
	d := c.sess.pending[:n]
	c.sess.pending = c.sess.pending[n:]
	return response{data: d, sw: moreData(len(c.sess.pending))}
}

// dispatch runs one complete command.
func (c *Card) dispatch(cmd command) response {
	if cmd.ins == insSelect {
		return c.selectApp(cmd)
	}
	if !c.sess.selected {
		return status(swInsNotSupported)
	}
	switch cmd.ins {
	case insGetVersion:
		return c.noArgs(cmd, func() response { return ok(c.cfg.Version[:]) })
	case insGetSerial:
		return c.noArgs(cmd, func() response {
			s := c.cfg.Serial
			return ok([]byte{byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)})
		})
	case insVerify:
		return c.verify(cmd)
	case insChangeReference:
		return c.changeReference(cmd)
	case insResetRetry:
		return c.resetRetry(cmd)
	case insGetMetadata:
		return c.metadata(cmd)
	case insAuthenticate:
		if cmd.p2 == slotCardManagement {
			return c.mgmtAuthenticate(cmd)
		}
		return c.keyAuthenticate(cmd)
	case insSetMgmKey:
		return c.setMgmtKey(cmd)
	case insGenerate:
		return c.generate(cmd)
	case insImportKey:
		return c.importKey(cmd)
	case insGetData:
		return c.getData(cmd)
	case insPutData:
		return c.putData(cmd)
	case insAttest:
		return c.attest(cmd)
	case insReset:
		return c.factoryReset(cmd)
	case insSetPINRetries:
		return c.setPINRetries(cmd)
	}
	return status(swInsNotSupported)
}

// noArgs runs f for a command that takes no parameters and no data.
func (c *Card) noArgs(cmd command, f func() response) response {
	if cmd.p1 != 0 || cmd.p2 != 0 {
		return status(swWrongP1P2)
	}
	if len(cmd.data) != 0 {
		return status(swWrongLength)
	}
	return f()
}

// selectApp answers SELECT by AID.
func (c *Card) selectApp(cmd command) response {
	if cmd.p1 != 0x04 || (cmd.p2 != 0x00 && cmd.p2 != 0x0c) {
		return status(swWrongP1P2)
	}
	if c.cfg.SelectOnly {
		return ok(nil)
	}
	aid := cmd.data
	if len(aid) < 5 || len(aid) > len(aidPIV) || !bytes.Equal(aid, aidPIV[:len(aid)]) {
		return status(swNotFound)
	}
	c.sess = session{selected: true}
	if cmd.p2 == 0x0c {
		return ok(nil)
	}
	return ok(append([]byte(nil), selectAnswer...))
}
