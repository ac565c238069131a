package vpiv

import "fmt"

// Data object tags.
const (
	tagTagList     = 0x5c
	tagDataObject  = 0x53
	objDiscovery   = 0x7e
	objPrinted     = 0x5fc109
	objAttestation = 0x5fff01

	// maxObject bounds one data object, like a YubiKey's.
	maxObject = 3063
)

// discoveryObject is the PIV discovery object: the AID and a PIN usage
// policy of "PIV PIN only".
var discoveryObject = []byte{
	0x7e, 0x12, 0x4f, 0x0b, 0xa0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10,
	0x00, 0x01, 0x00, 0x5f, 0x2f, 0x02, 0x40, 0x00,
}

// writableObject reports whether PUT DATA may store tag: the PIV data
// objects 5fc101 to 5fc123.
func writableObject(tag uint32) bool {
	return tag >= 0x5fc101 && tag <= 0x5fc123
}

func objectKey(tag uint32) string { return fmt.Sprintf("%06x", tag) }

// readTagList parses 5c L tag, the object reference of GET and PUT DATA,
// and returns the tag and the bytes after the list.
func readTagList(b []byte) (uint32, []byte, bool) {
	t, rest, err := readTLV(b)
	if err != nil || t.tag != tagTagList || len(t.value) == 0 || len(t.value) > 3 {
		return 0, nil, false
	}
	var tag uint32
	for _, c := range t.value {
		tag = tag<<8 | uint32(c)
	}
	return tag, rest, true
}

// getData answers GET DATA (00 cb 3f ff, 5c L tag) with 53 L content.
func (c *Card) getData(cmd command) response {
	if cmd.p1 != 0x3f || cmd.p2 != 0xff {
		return status(swWrongP1P2)
	}
	tag, rest, good := readTagList(cmd.data)
	if !good || len(rest) != 0 {
		return status(swWrongData)
	}
	switch tag {
	case objDiscovery:
		return ok(append([]byte(nil), discoveryObject...))
	case objAttestation:
		return ok(tlvBytes(tagDataObject, certObject(c.st.Attestation.Cert)))
	case objPrinted:
		if !c.sess.pinVerified {
			return status(swSecurityStatus)
		}
	}
	v, has := c.st.Objects[objectKey(tag)]
	if !has {
		return status(swNotFound)
	}
	return ok(tlvBytes(tagDataObject, v))
}

// putData answers PUT DATA (00 db 3f ff, 5c L tag 53 L content); it needs
// the management key. Empty content deletes the object.
func (c *Card) putData(cmd command) response {
	if cmd.p1 != 0x3f || cmd.p2 != 0xff {
		return status(swWrongP1P2)
	}
	if !c.sess.mgmtAuth {
		return status(swSecurityStatus)
	}
	tag, rest, good := readTagList(cmd.data)
	if !good || !writableObject(tag) {
		return status(swWrongData)
	}
	content, err := parseOne(rest, tagDataObject)
	if err != nil {
		return status(swWrongData)
	}
	if len(content) > maxObject {
		return status(swNoSpace)
	}
	if len(content) == 0 {
		delete(c.st.Objects, objectKey(tag))
	} else {
		c.st.Objects[objectKey(tag)] = append([]byte(nil), content...)
	}
	return c.commit(ok(nil))
}

// certObject wraps a DER certificate as a PIV certificate object:
// 70 cert, 71 00 (uncompressed), fe (error detection code).
func certObject(der []byte) []byte {
	out := appendTLV(nil, 0x70, der)
	out = appendTLV(out, 0x71, []byte{0x00})
	return appendTLV(out, 0xfe, nil)
}
