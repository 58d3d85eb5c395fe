package a2aproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"
	"unicode/utf8"
)

// The A2A protocol, client side, over JSON-RPC 2.0 on HTTP (A2A
// specification v0.3: the agent card at /.well-known/agent-card.json,
// message/send, message/stream as server-sent events). Written here rather
// than taken from github.com/a2aproject/a2a-go: its client package links gRPC
// and protobuf into every binary, and it reads cards and responses without a
// size bound, which a proxy of untrusted agents needs.

// CardPath is where an agent publishes its card, relative to its URL.
const CardPath = "/.well-known/agent-card.json"

// agentClient talks to one agent with the app's headers.
type agentClient struct {
	url     string // the agent's base URL, without a trailing slash
	rpcURL  string // where JSON-RPC requests go (the card's url, else url)
	headers http.Header
	http    *http.Client
	limits  Limits
}

// card is the part of an agent card the proxy uses; the whole card is kept
// as decoded (raw) for agent_card.
type card struct {
	Name               string   `json:"name"`
	Description        string   `json:"description"`
	Version            string   `json:"version"`
	URL                string   `json:"url"`
	DefaultInputModes  []string `json:"defaultInputModes"`
	DefaultOutputModes []string `json:"defaultOutputModes"`
	Capabilities       struct {
		Streaming         bool `json:"streaming"`
		PushNotifications bool `json:"pushNotifications"`
	} `json:"capabilities"`
	Skills []skill `json:"skills"`
}

type skill struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Tags        []string `json:"tags"`
	Examples    []string `json:"examples"`
}

func (a *agentClient) do(req *http.Request) (*http.Response, error) {
	for k, vs := range a.headers {
		req.Header[k] = vs
	}
	return a.http.Do(req)
}

// readLimited reads at most limit bytes of r, failing with ErrTooLarge
// beyond.
func readLimited(r io.Reader, limit int64, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrTooLarge, what, limit)
	}
	return b, nil
}

// fetchCard reads and decodes the agent card.
func (a *agentClient) fetchCard(ctx context.Context) (card, map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, a.limits.CardTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url+CardPath, nil)
	if err != nil {
		return card{}, nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.do(req)
	if err != nil {
		return card{}, nil, fmt.Errorf("%w: %w", ErrAgent, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return card{}, nil, fmt.Errorf("%w: agent card: HTTP %s", ErrAgent, resp.Status)
	}
	body, err := readLimited(resp.Body, a.limits.MaxCardBytes, "agent card")
	if err != nil {
		return card{}, nil, err
	}
	var c card
	var raw map[string]any
	if err := json.Unmarshal(body, &c); err != nil {
		return card{}, nil, fmt.Errorf("%w: agent card: %w", ErrAgent, err)
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return card{}, nil, fmt.Errorf("%w: agent card: %w", ErrAgent, err)
	}
	if c.Name == "" {
		return card{}, nil, fmt.Errorf("%w: agent card has no name", ErrAgent)
	}
	if len(c.Skills) > a.limits.MaxSkills {
		return card{}, nil, fmt.Errorf("%w: agent card lists %d skills, more than %d", ErrTooLarge, len(c.Skills), a.limits.MaxSkills)
	}
	return c, raw, nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// rpcRequest builds the JSON-RPC request of method with message.
func rpcRequest(method string, message map[string]any) ([]byte, error) {
	return json.Marshal(map[string]any{
		"jsonrpc": "2.0", "id": newID(), "method": method,
		"params": map[string]any{"message": message},
	})
}

// rpcResponse is one JSON-RPC response (or one SSE event's payload).
type rpcResponse struct {
	Result map[string]any `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (r rpcResponse) value() (map[string]any, error) {
	if r.Error != nil {
		return nil, fmt.Errorf("%w: error %d: %s", ErrAgent, r.Error.Code, truncate(r.Error.Message, 500))
	}
	if r.Result == nil {
		return nil, fmt.Errorf("%w: response has neither result nor error", ErrAgent)
	}
	return r.Result, nil
}

// send is message/send: the agent's Task or Message.
func (a *agentClient) send(ctx context.Context, message map[string]any) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, a.limits.CallTimeout)
	defer cancel()
	body, err := rpcRequest("message/send", message)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.rpcURL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := a.do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAgent, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: message/send: HTTP %s", ErrAgent, resp.Status)
	}
	b, err := readLimited(resp.Body, a.limits.MaxResponseBytes, "response")
	if err != nil {
		return nil, err
	}
	var r rpcResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: message/send: %w", ErrAgent, err)
	}
	return r.value()
}

// stream is message/stream: each event's result as the agent sends it,
// until the agent ends the stream, a final status arrives, the consumer
// stops, or a limit is hit (an event larger than MaxEventBytes, more than
// MaxStreamEvents events), which ends it with an error.
func (a *agentClient) stream(ctx context.Context, message map[string]any) iter.Seq2[map[string]any, error] {
	return func(yield func(map[string]any, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel() // closes the response body's connection
		body, err := rpcRequest("message/stream", message)
		if err != nil {
			yield(nil, err)
			return
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.rpcURL, bytes.NewReader(body))
		if err != nil {
			yield(nil, err)
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "text/event-stream")
		resp, err := a.do(req)
		if err != nil {
			yield(nil, fmt.Errorf("%w: %w", ErrAgent, err))
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			yield(nil, fmt.Errorf("%w: message/stream: HTTP %s", ErrAgent, resp.Status))
			return
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
			// An agent without streaming may answer with one JSON response.
			b, err := readLimited(resp.Body, a.limits.MaxResponseBytes, "response")
			if err != nil {
				yield(nil, err)
				return
			}
			var r rpcResponse
			if err := json.Unmarshal(b, &r); err != nil {
				yield(nil, fmt.Errorf("%w: message/stream: %w", ErrAgent, err))
				return
			}
			yield(r.value())
			return
		}
		sc := bufio.NewScanner(resp.Body)
		// The bound is the larger of max and the first buffer's capacity.
		sc.Buffer(make([]byte, 0, min(4096, a.limits.MaxEventBytes)), a.limits.MaxEventBytes)
		var data bytes.Buffer
		events := 0
		for {
			more := sc.Scan()
			line := sc.Bytes()
			if more && len(line) > 0 {
				if after, ok := bytes.CutPrefix(line, []byte("data:")); ok {
					if data.Len() > 0 {
						data.WriteByte('\n')
					}
					data.Write(bytes.TrimPrefix(after, []byte(" ")))
					if data.Len() > a.limits.MaxEventBytes {
						yield(nil, fmt.Errorf("%w: stream event is larger than %d bytes", ErrTooLarge, a.limits.MaxEventBytes))
						return
					}
				}
				continue // comments, event:, id:, retry: lines
			}
			if data.Len() > 0 {
				events++
				if events > a.limits.MaxStreamEvents {
					yield(nil, fmt.Errorf("%w: the stream sent more than %d events", ErrTooLarge, a.limits.MaxStreamEvents))
					return
				}
				var r rpcResponse
				if err := json.Unmarshal(data.Bytes(), &r); err != nil {
					yield(nil, fmt.Errorf("%w: stream event: %w", ErrAgent, err))
					return
				}
				data.Reset()
				v, err := r.value()
				if !yield(v, err) || err != nil {
					return
				}
				if final, _ := v["final"].(bool); final {
					return
				}
			}
			if !more {
				break
			}
		}
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				err = fmt.Errorf("%w: a stream line is longer than %d bytes", ErrTooLarge, a.limits.MaxEventBytes)
			} else if ctx.Err() == nil {
				err = fmt.Errorf("%w: stream: %w", ErrAgent, err)
			} else {
				return
			}
			yield(nil, err)
		}
	}
}

// resultText is upstream's reading of a message/send result: the text of a
// completed task's artifacts, or "Task <id> status: <state>", or the text
// parts of a message, joined by spaces.
func resultText(v map[string]any) string {
	switch v["kind"] {
	case "task":
		status, _ := v["status"].(map[string]any)
		state, _ := status["state"].(string)
		arts, _ := v["artifacts"].([]any)
		if state == "completed" && len(arts) > 0 {
			var texts []string
			for _, a := range arts {
				am, _ := a.(map[string]any)
				texts = append(texts, partTexts(am["parts"])...)
			}
			return strings.Join(texts, " ")
		}
		return fmt.Sprintf("Task %v status: %s", v["id"], state)
	default:
		return strings.Join(partTexts(v["parts"]), " ")
	}
}

func partTexts(parts any) []string {
	ps, _ := parts.([]any)
	var out []string
	for _, p := range ps {
		pm, _ := p.(map[string]any)
		if t, ok := pm["text"].(string); ok {
			out = append(out, t)
		}
	}
	return out
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
