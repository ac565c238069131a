package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Paths of the auths v1 layout.
const (
	metadataPath   = "v1/metadata.json"
	identitiesPath = "v1/identities"
	devicesPath    = "v1/devices"
	layoutVersion  = 1
)

// identityDir returns v1/identities/<p[0:2]>/<p[2:4]>/<prefix>.
func identityDir(prefix string) (string, error) {
	if err := checkPrefix(prefix); err != nil {
		return "", err
	}
	return identitiesPath + "/" + prefix[0:2] + "/" + prefix[2:4] + "/" + prefix, nil
}

// checkPrefix accepts a qb64 identifier: at least 4 base64url characters.
func checkPrefix(prefix string) error {
	if len(prefix) < 4 || len(prefix) > 200 {
		return fmt.Errorf("prefix %q: want a qb64 identifier", clip(prefix))
	}
	for i := 0; i < len(prefix); i++ {
		if !isB64(prefix[i]) {
			return fmt.Errorf("prefix %q: character %q is not base64url", clip(prefix), prefix[i])
		}
	}
	return nil
}

func isB64(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func eventName(sn uint64) string      { return fmt.Sprintf("%08d.json", sn) }
func attachmentName(sn uint64) string { return fmt.Sprintf("%08d.attachments.cesr", sn) }

// parseEventName returns the sequence number of an events/ entry name and
// whether it is an attachment; ok is false for names outside the layout.
func parseEventName(name string) (sn uint64, attachment bool, ok bool) {
	base, found := strings.CutSuffix(name, ".attachments.cesr")
	if found {
		attachment = true
	} else if base, found = strings.CutSuffix(name, ".json"); !found {
		return 0, false, false
	}
	if len(base) < 8 {
		return 0, false, false
	}
	for i := 0; i < len(base); i++ {
		if base[i] < '0' || base[i] > '9' {
			return 0, false, false
		}
		sn = sn*10 + uint64(base[i]-'0')
	}
	if fmt.Sprintf("%08d", sn) != base {
		return 0, false, false
	}
	return sn, attachment, true
}

// DeviceDir returns v1/devices/<s1>/<s2>/<name> for a device DID: the DID
// with every ':' replaced by '_', sharded by characters [0:2] and [2:4] of
// that name once a leading "did_key_" is stripped.
func DeviceDir(did string) (string, error) {
	if !strings.HasPrefix(did, "did:") || len(did) > 512 {
		return "", fmt.Errorf("device DID %q: want did:method:id", clip(did))
	}
	for i := 0; i < len(did); i++ {
		c := did[i]
		if !(isB64(c) || c == ':' || c == '.' || c == '%') {
			return "", fmt.Errorf("device DID %q: character %q not allowed in a registry path", clip(did), c)
		}
	}
	name := strings.ReplaceAll(did, ":", "_")
	shard := strings.TrimPrefix(name, "did_key_")
	if len(shard) < 4 {
		return "", fmt.Errorf("device DID %q: too short to shard", clip(did))
	}
	return devicesPath + "/" + shard[0:2] + "/" + shard[2:4] + "/" + name, nil
}

// historyName is the name of an attestation's history copy:
// <UTC %Y%m%dT%H%M%S.mmm>_<rid>.json with the whole rid (auths formats it
// with {:.8}, which its ResourceId's Display ignores).
func historyName(t time.Time, rid string) string {
	return t.UTC().Format("20060102T150405.000") + "_" + rid + ".json"
}

// Tip is the content of tip.json: the last event of a KEL.
type Tip struct {
	Version  int    `json:"version"`
	Sequence uint64 `json:"sequence"`
	SAID     string `json:"said"`
}

// stateFile is the content of state.json.
type stateFile struct {
	Version              int             `json:"version"`
	State                json.RawMessage `json:"state"`
	ValidatedAgainstSAID string          `json:"validated_against_said"`
}

// Metadata is the content of v1/metadata.json.
type Metadata struct {
	Version       int    `json:"version"`
	IdentityCount uint64 `json:"identity_count"`
	DeviceCount   uint64 `json:"device_count"`
	MemberCount   uint64 `json:"member_count"`
	UpdatedAt     string `json:"updated_at"`
}

// pretty encodes v as the registry's JSON files are written: two-space
// indent, no HTML escaping, no trailing newline.
func pretty(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// prettyEvent turns the exact signed bytes of an event into its blob. The
// reader gets the signed bytes back with json.Compact.
func prettyEvent(raw []byte) ([]byte, error) {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// compactEvent is the inverse of prettyEvent.
func compactEvent(blob []byte) ([]byte, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, blob); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// decodeStrict decodes a JSON file of the registry, refusing unknown
// trailing data.
func decodeStrict(path string, data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return &CorruptError{Path: path, Reason: "not valid JSON of the expected shape", Err: err}
	}
	if dec.More() {
		return corrupt(path, "trailing data after the JSON value")
	}
	return nil
}
