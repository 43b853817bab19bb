// counter is a small web app that keeps its hit counter in Redis, itself a unikernel: every
// GET / increments the key "hits" (INCR) and answers "hits: N". Standard library only: the
// Redis protocol (RESP) is spoken by hand, one short connection per request.
package main

import (
	"bufio"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// incr sends INCR key to the Redis at addr and returns the new value.
func incr(addr, key string) (int64, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	// a RESP array of bulk strings: *2 $4 INCR $len key
	if _, err := fmt.Fprintf(conn, "*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n", len(key), key); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return 0, err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, ":"): // integer reply
		return strconv.ParseInt(line[1:], 10, 64)
	case strings.HasPrefix(line, "-"): // error reply
		return 0, fmt.Errorf("redis: %s", line[1:])
	default:
		return 0, fmt.Errorf("redis: unexpected reply %q", line)
	}
}

func main() {
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = "redis:6379" // the Redis instance named "redis" on the same unik network
	}
	http.HandleFunc("/ping_test", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "pong")
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		n, err := incr(addr, "hits")
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "hits: %d\n", n)
	})
	fmt.Printf("counter listening on :8080, redis at %s\n", addr)
	log.Fatal(http.ListenAndServe(":8080", nil))
}
