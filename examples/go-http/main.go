// go-http is the example app unik builds into a unikernel: a plain net/http server.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/ping_test", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "pong")
	})
	http.HandleFunc("/env_test", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, os.Getenv("KEY"))
	})
	http.HandleFunc("/mount_test", func(w http.ResponseWriter, r *http.Request) {
		data, err := os.ReadFile("/data/data.txt")
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(data)
	})
	// /write_test?name=N&data=D writes D to /data/N: the app keeps state on its volume.
	http.HandleFunc("/write_test", func(w http.ResponseWriter, r *http.Request) {
		name := filepath.Base(r.URL.Query().Get("name"))
		if err := os.WriteFile(filepath.Join("/data", name), []byte(r.URL.Query().Get("data")), 0o644); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "written")
	})
	http.HandleFunc("/read_test", func(w http.ResponseWriter, r *http.Request) {
		data, err := os.ReadFile(filepath.Join("/data", filepath.Base(r.URL.Query().Get("name"))))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(data)
	})
	http.HandleFunc("/log_test", func(w http.ResponseWriter, r *http.Request) {
		line := r.URL.Query().Get("line")
		fmt.Println(line)
		fmt.Fprint(w, "logged")
	})
	// /sleep_test?ms=N sleeps N ms and reports how long it really took: guests without a
	// working timer interrupt oversleep (or never wake) and this shows it.
	http.HandleFunc("/sleep_test", func(w http.ResponseWriter, r *http.Request) {
		var ms int
		fmt.Sscan(r.URL.Query().Get("ms"), &ms)
		start := time.Now()
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Fprint(w, time.Since(start).Milliseconds())
	})
	http.HandleFunc("/exit_test", func(w http.ResponseWriter, r *http.Request) {
		code := r.URL.Query().Get("code")
		fmt.Fprint(w, "exiting")
		go func() {
			time.Sleep(100 * time.Millisecond)
			var n int
			fmt.Sscan(code, &n)
			os.Exit(n)
		}()
	})
	fmt.Printf("go-http listening on :%s (args: %s)\n", port, strings.Join(os.Args[1:], " "))
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
