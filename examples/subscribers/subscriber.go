// One process, one hearsay stream: prints every event it gets, one
// CloudEvent per line, and keeps its Last-Event-ID across reconnects.
// Standard library only (Go 1.19+). HEARSAY_API defaults to 127.0.0.1:7070.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

func handle(event map[string]any) {
	// Your cache goes here: drop data.keys of data.cache, or everything
	// on a dev.hearsay.flush.
	line, _ := json.Marshal(event)
	fmt.Println(string(line))
}

func main() {
	api := os.Getenv("HEARSAY_API")
	if api == "" {
		api = "127.0.0.1:7070"
	}
	lastID := ""
	for {
		lastID = follow("http://"+api+"/v1/subscribe", lastID)
		time.Sleep(time.Second)
	}
}

// follow reads one stream until it breaks and returns the last id seen.
func follow(url, lastID string) string {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stream broke:", err)
		return lastID
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "stream refused:", resp.Status)
		return lastID
	}
	fmt.Fprintln(os.Stderr, "stream", resp.Header.Get("Hearsay-Stream"))
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(make([]byte, 0, 64*1024), 4<<20) // events reach 64 KiB and more
	var data []string
	for lines.Scan() {
		line := strings.TrimRight(lines.Text(), "\r")
		switch {
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(line[5:], " "))
		case line == "" && len(data) > 0:
			var event map[string]any
			if err := json.Unmarshal([]byte(strings.Join(data, "\n")), &event); err == nil {
				handle(event)
				lastID, _ = event["id"].(string)
			}
			data = nil
		}
	}
	fmt.Fprintln(os.Stderr, "stream broke:", lines.Err())
	return lastID
}
