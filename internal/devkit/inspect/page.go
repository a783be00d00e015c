package inspect

import (
	"html/template"
	"time"
)

// overviewView is what the overview shows; each section keeps its own
// error, so that a broker or a registry that does not answer hides only
// its section.
type overviewView struct {
	Config
	Refresh             int       // seconds between reloads; 0: none
	Now                 time.Time // when the page was read
	Filter, FilterError string    // the order whose events are shown, or why the filter is refused
	Topics              []topicView
	TopicsError         error
	Lag                 lagView
	LagError            error
	Registry            registryView
	RegistryError       error
	Events              []eventView
	EventsError         error
	Letters             []letterView
	LettersError        error
}

// pages are the two pages; the sections carry ids (topics, lag, subjects,
// events, dlq; api, outbox, topic-events, projection, ledger, parked,
// read-models, order-dlq) that the tests read.
var pages = template.Must(template.New("pages").Funcs(template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05.000")
	},
}).Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
{{- with .}}<meta http-equiv="refresh" content="{{.}}">{{end}}
<title>Orders on Kafka — inspector</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ddd;padding:2px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,monospace;font-size:12px}.err{color:#b00}.muted{color:#777}
nav a{margin-right:1em}
</style></head><body>{{end}}

{{define "table"}}{{if .Error}}<p class="err">{{.Error}}</p>{{else if not .Rows}}<p class="muted">none</p>{{else}}
<table><tr>{{range .Columns}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td class="mono">{{.}}</td>{{end}}</tr>
{{end}}</table>{{end}}{{end}}

{{define "events"}}<table><tr><th>partition</th><th>offset</th><th>time</th><th>key</th><th>type</th><th>order</th><th>version</th><th>status</th><th>headers</th></tr>
{{range .}}<tr class="event"><td class="n">{{.Partition}}</td><td class="n">{{.Offset}}</td><td class="mono">{{time .Time}}</td><td class="mono">{{.Key}}</td>
{{if .Error}}<td colspan="4" class="err">{{.Error}}</td>{{else}}<td>{{.Type}}</td><td class="mono"><a href="/orders/{{.OrderID}}">{{.OrderID}}</a></td><td class="n">{{.Version}}</td><td>{{.Status}}</td>{{end}}
<td class="mono">{{range .Headers}}{{.}}<br>{{end}}</td></tr>
{{else}}<tr><td colspan="9" class="muted">no events</td></tr>{{end}}</table>{{end}}

{{define "letters"}}<table><tr><th>partition</th><th>offset</th><th>key</th><th>original</th><th>dead-lettered</th><th>class</th><th>reason</th><th>replay</th></tr>
{{range .}}<tr class="letter"><td class="n">{{.Partition}}</td><td class="n">{{.Offset}}</td><td class="mono">{{.Key}}</td>
<td class="mono">{{.OriginalTopic}}/{{.OriginalPartition}}@{{.OriginalOffset}}</td><td class="mono">{{time .Time}}</td>
<td class="mono">{{.ErrorClass}}</td><td>{{.ErrorMessage}}{{if .Truncated}} <b>(cut to fit the DLQ: cannot be replayed)</b>{{end}}</td>
<td><code>{{.Replay}}</code></td></tr>
{{else}}<tr><td colspan="8" class="muted">no dead letters</td></tr>{{end}}</table>{{end}}

{{define "overview"}}{{template "head" .Refresh}}
<h1>Orders on Kafka — inspector</h1>
<p class="muted">Read-only. Read at {{time .Now}} UTC{{if .Refresh}}; reloads every {{.Refresh}} s (<a href="?refresh=off{{with .Filter}}&amp;order={{.}}{{end}}">stop</a>){{else}} (<a href="?{{with .Filter}}order={{.}}{{end}}">reload every 5 s</a>){{end}}.</p>
<form action="/orders" method="get">Order trail: <input name="id" size="40" placeholder="order ID"> <button>show</button></form>
<nav><a href="#topics">topics</a><a href="#lag">lag</a><a href="#subjects">subjects</a><a href="#events">events</a><a href="#dlq">dead letters</a></nav>

<section id="topics"><h2>Topics</h2>
{{with .TopicsError}}<p class="err">{{.}}</p>{{end}}
{{range .Topics}}<h3>{{.Name}} — {{len .Partitions}} partitions, {{.Messages}} messages</h3>
<table><tr><th>partition</th><th>first offset</th><th>last offset</th><th>messages</th></tr>
{{range .Partitions}}<tr class="partition"><td class="n">{{.Partition}}</td><td class="n">{{.First}}</td><td class="n">{{.Next}}</td><td class="n">{{.Messages}}</td></tr>
{{end}}</table>{{end}}</section>

<section id="lag"><h2>Consumer group {{.Group}} on {{.Topic}} — lag {{.Lag.Total}}</h2>
<p class="muted">The group's committed offsets, fetched without joining it; lag is the partition's end less the committed offset.</p>
{{with .LagError}}<p class="err">{{.}}</p>{{end}}
<table><tr><th>partition</th><th>committed</th><th>end</th><th>lag</th></tr>
{{range .Lag.Partitions}}<tr class="lag"><td class="n">{{.Partition}}</td><td class="n">{{.Committed}}</td><td class="n">{{.End}}</td><td class="n">{{.Lag}}</td></tr>
{{end}}</table></section>

<section id="subjects"><h2>Schema Registry — global compatibility {{.Registry.Global}}</h2>
{{with .RegistryError}}<p class="err">{{.}}</p>{{end}}
<table><tr><th>subject</th><th>versions</th><th>compatibility</th></tr>
{{range .Registry.Subjects}}<tr class="subject"><td class="mono">{{.Name}}</td><td>{{range $i, $v := .Versions}}{{if $i}}, {{end}}{{$v}}{{end}}</td><td>{{.Compatibility}}{{if .Inherited}} <span class="muted">(global)</span>{{end}}</td></tr>
{{else}}<tr><td colspan="3" class="muted">no subjects</td></tr>{{end}}</table>
{{if .Registry.Cut}}<p class="muted">only the first subjects are listed</p>{{end}}</section>

<section id="events"><h2>Latest events on {{.Topic}}{{with .Filter}} of order {{.}}{{end}}</h2>
<form action="/" method="get">Only the order <input name="order" size="40" value="{{.Filter}}"> <button>filter</button>{{if .Filter}} <a href="/">all</a>{{end}}</form>
{{with .FilterError}}<p class="err">{{.}}</p>{{end}}
{{with .EventsError}}<p class="err">{{.}}</p>{{end}}
{{template "events" .Events}}</section>

<section id="dlq"><h2>Dead letters on {{.DLQTopic}}</h2>
<p class="muted">Replay one with the command beside it, run with order-consumer's variables (the playground's banner names their file).</p>
{{with .LettersError}}<p class="err">{{.}}</p>{{end}}
{{template "letters" .Letters}}</section>
</body></html>{{end}}

{{define "trail"}}{{template "head" 0}}
<h1>Order {{.ID}}</h1>
<p><a href="/">← the inspector</a> · <a href="/?order={{.ID}}">its events among the latest</a> · <span class="muted">read at {{time .Now}} UTC</span></p>
{{with .Error}}<p class="err" id="error">{{.}}</p>{{end}}
{{if .ID}}
<section id="api"><h2>order-api: the order (orders)</h2>{{template "table" .API}}</section>
<section id="outbox"><h2>order-api: its outbox rows (outbox, outbox_published, outbox_set_aside)</h2>{{template "table" .Outbox}}</section>
<section id="topic-events"><h2>Its events on {{.Topic}}</h2>
{{with .EventsError}}<p class="err">{{.}}</p>{{end}}{{template "events" .Events}}</section>
<section id="projection"><h2>order-consumer: its projection (order_projection)</h2>{{template "table" .Projection}}</section>
<section id="ledger"><h2>order-consumer: the ledger's outcomes (processed_events)</h2>{{template "table" .Ledger}}</section>
<section id="parked"><h2>order-consumer: parked events (parked_events)</h2>{{template "table" .Parked}}</section>
<section id="read-models"><h2>Read models</h2>
<h3>order_projection</h3>{{template "table" .Projection}}
<h3>customer_orders (its customer)</h3>{{template "table" .Customers}}</section>
<section id="order-dlq"><h2>Its dead letters on {{.DLQTopic}}</h2>
{{with .LettersError}}<p class="err">{{.}}</p>{{end}}{{template "letters" .Letters}}</section>
{{end}}
</body></html>{{end}}
`))
