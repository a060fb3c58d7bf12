// udp_echo_go: a UDP echo server in Go, written the way Go programs write
// it: one net.UDPConn per thread, bound to 127.0.0.1:PORT with
// SO_REUSEPORT (the kernel spreads senders over them, as over weft's
// per-worker endpoints), each served by a goroutine doing ReadFromUDP and
// WriteToUDP; GOMAXPROCS = THREADS. bench/udp.sh builds and runs it.
//
//	udp_echo_go THREADS PORT   prints READY once bound; exits on SIGTERM
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: udp_echo_go THREADS PORT")
		os.Exit(2)
	}
	threads, _ := strconv.Atoi(os.Args[1])
	port := os.Args[2]
	if threads < 1 {
		threads = 1
	}
	runtime.GOMAXPROCS(threads)
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	for i := 0; i < threads; i++ {
		pc, err := lc.ListenPacket(context.Background(), "udp4", "127.0.0.1:"+port)
		if err != nil {
			fmt.Fprintln(os.Stderr, "udp_echo_go:", err)
			os.Exit(1)
		}
		conn := pc.(*net.UDPConn)
		go func() {
			buf := make([]byte, 65536)
			for {
				n, addr, err := conn.ReadFromUDP(buf)
				if err != nil {
					return
				}
				conn.WriteToUDP(buf[:n], addr)
			}
		}()
	}
	fmt.Println("READY")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
