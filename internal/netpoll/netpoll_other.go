//go:build !linux

package netpoll

import (
	"errors"
	"net"
	"time"
)

// Poller needs epoll: on other systems New fails with errors.ErrUnsupported
// and connections keep a goroutine each.
type Poller struct{}

// New fails: epoll is Linux's.
func New(int, func(int)) (*Poller, error) { return nil, errors.ErrUnsupported }

// Loops is 0.
func (*Poller) Loops() int { return 0 }

// Close does nothing.
func (*Poller) Close() error { return nil }

// Adopt fails.
func (*Poller) Adopt(*net.TCPConn, Handler) (*FD, error) { return nil, errors.ErrUnsupported }

// FD is never made on this system.
type FD struct{}

func (*FD) Loop() int                         { return 0 }
func (*FD) Poll() error                       { return errors.ErrUnsupported }
func (*FD) Unpoll()                           {}
func (*FD) ReadNow([]byte) (int, error)       { return 0, errors.ErrUnsupported }
func (*FD) Read([]byte) (int, error)          { return 0, errors.ErrUnsupported }
func (*FD) Write([]byte) (int, error)         { return 0, errors.ErrUnsupported }
func (*FD) WriteNonblock([]byte) (int, error) { return 0, errors.ErrUnsupported }
func (*FD) Close() error                      { return nil }
func (*FD) LocalAddr() net.Addr               { return nil }
func (*FD) RemoteAddr() net.Addr              { return nil }
func (*FD) SetDeadline(time.Time) error       { return errors.ErrUnsupported }
func (*FD) SetReadDeadline(time.Time) error   { return errors.ErrUnsupported }
func (*FD) SetWriteDeadline(time.Time) error  { return errors.ErrUnsupported }
