// Package loopback hands each test server a loopback address of its own.
//
// Every address is 127.X.Y.Z with Y.Z the low 16 bits of the test binary's
// pid and X = 100 + a counter, and servers listen on fixed ports there.
// Linux routes all of 127.0.0.0/8 to lo, and the client side of a loopback
// connection uses 127.0.0.1, so nothing else ever binds these ports on that
// address: no port is chosen, closed and handed over, and a process
// restarted after kill -9 gets the same address back. A claim socket held
// for the life of the test binary makes two binaries whose pids share their
// low 16 bits skip each other's addresses.
package loopback

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
)

// The fixed ports servers use on a claimed address.
const (
	PortNATS  = "4222"
	PortNATS2 = "4223"
	PortHTTP  = "8080"
	PortS3    = "7070"
	PortRoute = "6222"
	portClaim = "7999"
)

var (
	ipCounter atomic.Int32
	claimsMu  sync.Mutex
	claims    []net.Listener
	freeIPs   []string // claimed addresses whose test has ended
)

// T is the part of testing.TB that IP uses; the package does not import
// testing, so that the benchmarks in the teatree binary can Claim.
type T interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
}

// IP returns a loopback address that only this test uses until it ends.
// Its cleanup runs after those of the processes started later on it, so an
// address is handed on only once nothing listens there.
func IP(t T) string {
	t.Helper()
	ip := claim(t)
	t.Cleanup(func() {
		claimsMu.Lock()
		defer claimsMu.Unlock()
		freeIPs = append(freeIPs, ip)
	})
	return ip
}

func claim(t T) string {
	t.Helper()
	claimsMu.Lock()
	if n := len(freeIPs); n > 0 {
		ip := freeIPs[n-1]
		freeIPs = freeIPs[:n-1]
		claimsMu.Unlock()
		return ip
	}
	claimsMu.Unlock()
	ip, err := Claim()
	if err != nil {
		t.Fatalf("claim a loopback address: %v", err)
	}
	return ip
}

// Claim returns a new loopback address, held for the life of the process:
// for servers a process outside `go test` starts (the benchmarks).
func Claim() (string, error) {
	pid := os.Getpid()
	for {
		c := ipCounter.Add(1)
		if c > 154 {
			return "", errors.New("out of loopback addresses")
		}
		ip := fmt.Sprintf("127.%d.%d.%d", 100+c, (pid>>8)&0xff, pid&0xff)
		claim, err := net.Listen("tcp", net.JoinHostPort(ip, portClaim))
		if err != nil {
			continue // another process holds it
		}
		if !bindable(ip, PortNATS, PortNATS2, PortHTTP, PortS3, PortRoute) {
			claim.Close()
			continue // a wildcard listener holds one of our ports
		}
		claimsMu.Lock()
		claims = append(claims, claim)
		claimsMu.Unlock()
		return ip, nil
	}
}

func bindable(ip string, ports ...string) bool {
	for _, p := range ports {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, p))
		if err != nil {
			return false
		}
		ln.Close()
	}
	return true
}
