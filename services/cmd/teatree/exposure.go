package main

import (
	"fmt"
	"net"
)

// listen is an address a command listens on, and the flag that set it.
type listen struct{ flag, addr string }

// checkExposure refuses, without an access policy, an address other
// machines can reach: anyone there could read, write and delete every
// model. --insecure is the operator saying so on purpose (a network of
// its own, a proxy in front that authenticates).
func checkExposure(auth, insecure bool, listens ...listen) error {
	if auth || insecure {
		return nil
	}
	for _, l := range listens {
		if !loopback(l.addr) {
			return fmt.Errorf("%s %s can be reached from other machines, and without --auth anyone there may read, write and delete every model: "+
				"give --auth FILE (see docs/security.md), listen on 127.0.0.1, or add --insecure to run open on purpose", l.flag, l.addr)
		}
	}
	return nil
}

// loopback says whether addr (host:port) listens on this machine only: a
// loopback IP or localhost. No host means every interface; other names
// are taken as reachable, whatever they resolve to now.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// openNotice is what `up` says of who may use it.
func openNotice(auth string, insecure bool) string {
	switch {
	case auth != "":
		return "policy " + auth + " (--auth)"
	case insecure:
		return "OPEN: no --auth, and --insecure: anyone who reaches the gateway or NATS may read, write and delete every model"
	}
	return "open: no --auth, so the gateway and NATS are open to anyone on this machine (give --auth FILE to decide who may do what)"
}
