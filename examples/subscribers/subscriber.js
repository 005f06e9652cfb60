// One process, one hearsay stream: prints every event it gets, one
// CloudEvent per line, and keeps its Last-Event-ID across reconnects.
// Node.js 18+ with no packages. HEARSAY_API defaults to 127.0.0.1:7070.
const http = require("node:http");

const [host, port] = (process.env.HEARSAY_API || "127.0.0.1:7070").split(":");
let lastId = null;

function handle(event) {
  // Your cache goes here: drop data.keys of data.cache, or everything on
  // a dev.hearsay.flush.
  console.log(JSON.stringify(event));
}

function follow() {
  const headers = { Accept: "text/event-stream" };
  if (lastId) headers["Last-Event-ID"] = lastId;
  let again = false;
  const retry = (why) => {
    if (again) return;
    again = true;
    console.error("stream broke:", why);
    setTimeout(follow, 1000);
  };
  const req = http.get({ host, port, path: "/v1/subscribe", headers }, (res) => {
    if (res.statusCode !== 200) {
      res.resume();
      return retry(`status ${res.statusCode}`);
    }
    console.error("stream", res.headers["hearsay-stream"]);
    res.setEncoding("utf8");
    let buffered = "";
    let data = [];
    res.on("data", (chunk) => {
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl).replace(/\r$/, "");
        buffered = buffered.slice(nl + 1);
        if (line.startsWith("data:")) {
          data.push(line.slice(5).replace(/^ /, ""));
        } else if (line === "" && data.length > 0) {
          const event = JSON.parse(data.join("\n"));
          data = [];
          handle(event);
          lastId = event.id;
        }
      }
    });
    res.on("end", () => retry("ended"));
    res.on("close", () => retry("closed"));
    res.on("error", (e) => retry(e.message));
  });
  // Keepalives arrive every 15 s, so a minute of silence is a dead stream.
  req.setTimeout(60000, () => req.destroy(new Error("no keepalive for 60 s")));
  req.on("error", (e) => retry(e.message));
}

follow();
