package vpiv

import "fmt"

// Status words the card answers with (ISO/IEC 7816-4 and NIST SP 800-73-4).
const (
	swOK               uint16 = 0x9000
	swMoreData         uint16 = 0x6100 // | bytes remaining, 00 for 256 or more
	swVerifyFailed     uint16 = 0x63c0 // | tries left
	swMemoryFailure    uint16 = 0x6581
	swWrongLength      uint16 = 0x6700
	swLastCmdExpected  uint16 = 0x6883
	swSecureMessaging  uint16 = 0x6882
	swSecurityStatus   uint16 = 0x6982
	swAuthBlocked      uint16 = 0x6983
	swConditions       uint16 = 0x6985
	swWrongData        uint16 = 0x6a80
	swNotFound         uint16 = 0x6a82
	swNoSpace          uint16 = 0x6a84
	swWrongP1P2        uint16 = 0x6a86
	swRefNotFound      uint16 = 0x6a88
	swInsNotSupported  uint16 = 0x6d00
	swClaNotSupported  uint16 = 0x6e00
	swNoPreciseDiagnos uint16 = 0x6f00
)

// Instructions the card knows.
const (
	insVerify          = 0x20
	insChangeReference = 0x24
	insResetRetry      = 0x2c
	insGenerate        = 0x47
	insAuthenticate    = 0x87
	insSelect          = 0xa4
	insGetResponse     = 0xc0
	insGetData         = 0xcb
	insPutData         = 0xdb
	insGetMetadata     = 0xf7
	insGetSerial       = 0xf8
	insAttest          = 0xf9
	insSetPINRetries   = 0xfa
	insReset           = 0xfb
	insGetVersion      = 0xfd
	insImportKey       = 0xfe
	insSetMgmKey       = 0xff
)

// claChain marks every command of a chain but the last.
const claChain = 0x10

// command is a parsed command APDU.
type command struct {
	cla, ins, p1, p2 byte
	data             []byte
	le               int // 0 when absent; 256 or 65536 for a zero Le
}

// parseCommand splits a short or extended command APDU. It returns
// swWrongLength when Lc disagrees with the bytes present.
func parseCommand(b []byte) (command, uint16) {
	if len(b) < 4 {
		return command{}, swWrongLength
	}
	c := command{cla: b[0], ins: b[1], p1: b[2], p2: b[3]}
	body := b[4:]
	switch {
	case len(body) == 0: // case 1
	case len(body) == 1: // case 2 short
		c.le = int(body[0])
		if c.le == 0 {
			c.le = 256
		}
	case body[0] != 0: // case 3 or 4 short
		n := int(body[0])
		switch len(body) {
		case 1 + n:
		case 2 + n:
			c.le = int(body[1+n])
			if c.le == 0 {
				c.le = 256
			}
		default:
			return command{}, swWrongLength
		}
		c.data = body[1 : 1+n]
	case len(body) == 3: // case 2 extended
		c.le = int(body[1])<<8 | int(body[2])
		if c.le == 0 {
			c.le = 65536
		}
	case len(body) > 3: // case 3 or 4 extended
		n := int(body[1])<<8 | int(body[2])
		switch len(body) {
		case 3 + n:
		case 5 + n:
			c.le = int(body[3+n])<<8 | int(body[4+n])
			if c.le == 0 {
				c.le = 65536
			}
		default:
			return command{}, swWrongLength
		}
		if n == 0 {
			return command{}, swWrongLength
		}
		c.data = body[3 : 3+n]
	default:
		return command{}, swWrongLength
	}
	return c, swOK
}

// response is a response APDU before it is framed.
type response struct {
	data []byte
	sw   uint16
}

func status(sw uint16) response { return response{sw: sw} }

func ok(data []byte) response { return response{data: data, sw: swOK} }

// bytes frames r as data followed by SW1 SW2.
func (r response) bytes() []byte {
	out := make([]byte, 0, len(r.data)+2)
	out = append(out, r.data...)
	return append(out, byte(r.sw>>8), byte(r.sw))
}

// triesLeft is the 63Cx status word for n tries left (n capped at 15).
func triesLeft(n int) uint16 {
	if n > 15 {
		n = 15
	}
	if n < 0 {
		n = 0
	}
	return swVerifyFailed | uint16(n)
}

// insName names an instruction in the trace, like the captured traces do.
func insName(ins byte) string {
	switch ins {
	case insVerify:
		return "VERIFY"
	case insChangeReference:
		return "CHANGE REFERENCE"
	case insResetRetry:
		return "RESET RETRY COUNTER"
	case insGenerate:
		return "GENERATE ASYMMETRIC"
	case insAuthenticate:
		return "GENERAL AUTHENTICATE"
	case insSelect:
		return "SELECT"
	case insGetResponse:
		return "GET RESPONSE"
	case insGetData:
		return "GET DATA"
	case insPutData:
		return "PUT DATA"
	case insGetMetadata:
		return "YK GET METADATA"
	case insGetSerial:
		return "YK GET SERIAL"
	case insAttest:
		return "YK ATTEST"
	case insSetPINRetries:
		return "YK SET PIN RETRIES"
	case insReset:
		return "YK RESET"
	case insGetVersion:
		return "YK GET VERSION"
	case insImportKey:
		return "YK IMPORT KEY"
	case insSetMgmKey:
		return "YK SET MGMKEY"
	}
	return fmt.Sprintf("INS %02x", ins)
}

// secretData reports whether the data of instruction ins carries a PIN, a
// PUK or key material, which the trace must never show.
func secretData(ins byte) bool {
	switch ins {
	case insVerify, insChangeReference, insResetRetry, insImportKey, insSetMgmKey:
		return true
	}
	return false
}
