package a2aproxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrAddressRefused marks a connection to an address the proxy may not
// reach.
var ErrAddressRefused = fmt.Errorf("%w: address refused", ErrAgent)

// newTransport is the HTTP transport to agents. It never connects to
// link-local, multicast or unspecified addresses (cloud metadata services
// live at 169.254.169.254 and fe80::/10), and with denyPrivate neither to
// loopback nor private networks. The check runs on the address actually
// dialled, after name resolution, so a name cannot point around it.
func newTransport(denyPrivate bool) *http.Transport {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s", ErrAddressRefused, address)
			}
			ip := ap.Addr().Unmap()
			switch {
			case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(), ip.IsMulticast(), ip.IsUnspecified(), ip.IsInterfaceLocalMulticast():
				return fmt.Errorf("%w: %s is link-local, multicast or unspecified", ErrAddressRefused, ip)
			case denyPrivate && (ip.IsLoopback() || ip.IsPrivate()):
				return fmt.Errorf("%w: %s is a loopback or private address", ErrAddressRefused, ip)
			}
			return nil
		}}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil // the check must see the agent's address, not a proxy's
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	t.ResponseHeaderTimeout = 2 * time.Minute
	t.MaxResponseHeaderBytes = 64 << 10
	return t
}
