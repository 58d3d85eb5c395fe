package jupyter

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// protocolVersion is the Jupyter messaging protocol version we speak.
const protocolVersion = "5.3"

// delimiter separates the routing identities from the signed frames.
var delimiter = []byte("<IDS|MSG>")

// Header is a Jupyter message header (also used for parent headers, which
// are empty objects for messages without a parent).
type Header struct {
	MsgID    string `json:"msg_id"`
	Session  string `json:"session"`
	Username string `json:"username"`
	Date     string `json:"date"`
	MsgType  string `json:"msg_type"`
	Version  string `json:"version"`
}

// Message is one Jupyter message as it travels: the signed parts are kept
// raw so that the signature is checked over the exact bytes received.
type Message struct {
	Header       Header
	ParentHeader Header
	Metadata     json.RawMessage
	Content      json.RawMessage
	Buffers      [][]byte
}

// ToMap renders the message the way jupyter_client hands messages to Python
// code (header, parent_header, msg_id, msg_type, metadata, content,
// buffers), for callers that forward raw kernel messages.
func (m *Message) ToMap() map[string]any {
	content, _ := decodeJSON(m.Content)
	meta, _ := decodeJSON(m.Metadata)
	bufs := make([]any, len(m.Buffers))
	for i, b := range m.Buffers {
		bufs[i] = b
	}
	return map[string]any{
		"header":        m.Header.toMap(),
		"parent_header": m.ParentHeader.toMap(),
		"msg_id":        m.Header.MsgID,
		"msg_type":      m.Header.MsgType,
		"metadata":      orEmpty(meta),
		"content":       orEmpty(content),
		"buffers":       bufs,
	}
}

func (h Header) toMap() map[string]any {
	if h == (Header{}) {
		return map[string]any{}
	}
	return map[string]any{
		"msg_id": h.MsgID, "session": h.Session, "username": h.Username,
		"date": h.Date, "msg_type": h.MsgType, "version": h.Version,
	}
}

func orEmpty(v any) map[string]any {
	if m, ok := v.(map[string]any); ok {
		return m
	}
	return map[string]any{}
}

// signer signs and verifies messages with the connection's HMAC-SHA256 key.
type signer struct{ key []byte }

func (s signer) sign(parts ...[]byte) []byte {
	mac := hmac.New(sha256.New, s.key)
	for _, p := range parts {
		mac.Write(p)
	}
	sum := mac.Sum(nil)
	out := make([]byte, hex.EncodedLen(len(sum)))
	hex.Encode(out, sum)
	return out
}

// Reasons a received message is dropped.
var (
	errNoDelimiter = errors.New("no <IDS|MSG> delimiter")
	errShort       = errors.New("fewer than four signed frames")
	errSignature   = errors.New("bad or missing HMAC signature")
	errHeader      = errors.New("header is not a JSON object with msg_id and msg_type")
)

// encode builds the frames of a message (after any routing identity).
func (s signer) encode(msgType, session string, parent Header, content any) ([][]byte, Header, error) {
	h := Header{
		MsgID:    newID(),
		Session:  session,
		Username: "hypha",
		Date:     time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"),
		MsgType:  msgType,
		Version:  protocolVersion,
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, h, err
	}
	pb := []byte("{}")
	if parent != (Header{}) {
		if pb, err = json.Marshal(parent); err != nil {
			return nil, h, err
		}
	}
	cb, err := json.Marshal(content)
	if err != nil {
		return nil, h, fmt.Errorf("jupyter: encode %s content: %w", msgType, err)
	}
	mb := []byte("{}")
	return [][]byte{delimiter, s.sign(hb, pb, mb, cb), hb, pb, mb, cb}, h, nil
}

// decode checks the signature over the received frames and parses the
// message. frames may start with routing identities or, on iopub, a topic.
func (s signer) decode(frames [][]byte) (*Message, error) {
	i := 0
	for ; i < len(frames); i++ {
		if bytes.Equal(frames[i], delimiter) {
			break
		}
	}
	if i == len(frames) {
		return nil, errNoDelimiter
	}
	rest := frames[i+1:]
	if len(rest) < 5 {
		return nil, errShort
	}
	want := s.sign(rest[1], rest[2], rest[3], rest[4])
	if !hmac.Equal(want, rest[0]) {
		return nil, errSignature
	}
	m := &Message{Metadata: rest[3], Content: rest[4], Buffers: rest[5:]}
	if err := json.Unmarshal(rest[1], &m.Header); err != nil || m.Header.MsgID == "" || m.Header.MsgType == "" {
		return nil, errHeader
	}
	// A parent header that does not parse is treated as absent: the message
	// then belongs to no request and is ignored by the router.
	_ = json.Unmarshal(rest[2], &m.ParentHeader)
	return m, nil
}

// decodeJSON decodes a JSON value the way Python's json module does for
// numbers: integers stay integers (int64), others are float64.
func decodeJSON(raw []byte) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return normalise(v), nil
}

func normalise(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	case map[string]any:
		for k, e := range t {
			t[k] = normalise(e)
		}
		return t
	case []any:
		for i, e := range t {
			t[i] = normalise(e)
		}
		return t
	}
	return v
}
