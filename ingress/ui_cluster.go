package ingress

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// The admin UI's Cluster and Network pages, for the master key only:
// the services on the bus as NATS micro discovery finds them ($SRV.STATS),
// and how the ingress classifies callers.

const (
	// uiClusterWait is how long replies to $SRV.STATS are gathered; the
	// gathering ends sooner once uiClusterQuiet passes without one.
	uiClusterWait  = 2 * time.Second
	uiClusterQuiet = 250 * time.Millisecond
	// uiClusterMax bounds the replies read.
	uiClusterMax = 4096
)

type uiEndpoint struct {
	Name       string  `json:"name"`
	Subject    string  `json:"subject"`
	Requests   int     `json:"requests"`
	Errors     int     `json:"errors"`
	AverageMS  float64 `json:"average_ms"`
	InFlight   *int    `json:"in_flight,omitempty"`
	QueueGroup string  `json:"queue_group,omitempty"`
}

type uiInstance struct {
	ID        string            `json:"id"`
	Version   string            `json:"version"`
	Started   time.Time         `json:"started"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	Endpoints []uiEndpoint      `json:"endpoints"`
}

type uiService struct {
	Name      string       `json:"name"`
	Versions  []string     `json:"versions"`
	Instances []uiInstance `json:"instances"`
}

// uiServerWorkers is one MCP server's workers.
type uiServerWorkers struct {
	Replicas int `json:"replicas"`
	InFlight int `json:"in_flight"`
	Requests int `json:"requests"`
	Errors   int `json:"errors"`
}

type uiClusterAnswer struct {
	Services []uiService                `json:"services"`
	Servers  map[string]uiServerWorkers `json:"servers"`
	// Bus is this ingress's NATS connection: the server it is on and the
	// cluster's other servers it knows.
	Bus struct {
		Connected string   `json:"connected"`
		Known     []string `json:"known,omitempty"`
	} `json:"bus"`
}

// masterOnly verifies r's caller and refuses any but the master key.
func (g *Ingress) masterOnly(w http.ResponseWriter, r *http.Request, what string) bool {
	id, ok := g.uiGet(w, r)
	if !ok {
		return false
	}
	if !id.Admin {
		writeRESTError(w, bus.Errorf(bus.ErrForbidden, "only the master key may see %s", what))
		return false
	}
	return true
}

func (g *Ingress) serveUICluster(w http.ResponseWriter, r *http.Request) {
	if !g.masterOnly(w, r, "the cluster") {
		return
	}
	stats, err := g.gatherStats(r)
	if err != nil {
		writeRESTError(w, bus.Errorf(bus.ErrServiceUnavailable, "cannot ask the services on the bus now: %v", err))
		return
	}
	var ans uiClusterAnswer
	ans.Servers = map[string]uiServerWorkers{}
	byName := map[string]*uiService{}
	for _, st := range stats {
		svc := byName[st.Name]
		if svc == nil {
			svc = &uiService{Name: st.Name}
			byName[st.Name] = svc
		}
		if !slices.Contains(svc.Versions, st.Version) {
			svc.Versions = append(svc.Versions, st.Version)
		}
		in := uiInstance{ID: st.ID, Version: st.Version, Started: st.Started, Metadata: st.Metadata}
		server := ""
		if st.Name == bus.ServiceWorker {
			server = st.Metadata["server"]
		}
		sw := ans.Servers[server]
		for _, e := range st.Endpoints {
			ep := uiEndpoint{Name: e.Name, Subject: e.Subject, Requests: e.NumRequests, Errors: e.NumErrors,
				AverageMS: float64(e.AverageProcessingTime) / float64(time.Millisecond), QueueGroup: e.QueueGroup}
			var ws bus.WorkerStats
			if len(e.Data) > 0 && json.Unmarshal(e.Data, &ws) == nil && e.Name == "rpc" {
				ep.InFlight = &ws.InFlight
				sw.InFlight += ws.InFlight
			}
			if e.Name == "rpc" {
				sw.Requests += e.NumRequests
				sw.Errors += e.NumErrors
			}
			in.Endpoints = append(in.Endpoints, ep)
		}
		if server != "" {
			sw.Replicas++
			ans.Servers[server] = sw
		}
		svc.Instances = append(svc.Instances, in)
	}
	for _, svc := range byName {
		sort.Slice(svc.Instances, func(i, j int) bool { return svc.Instances[i].ID < svc.Instances[j].ID })
		slices.Sort(svc.Versions)
		ans.Services = append(ans.Services, *svc)
	}
	sort.Slice(ans.Services, func(i, j int) bool { return ans.Services[i].Name < ans.Services[j].Name })
	// Servers without a worker replica show as none.
	if g.o.Servers != nil {
		for _, s := range g.o.Servers.Names() {
			if _, ok := ans.Servers[s]; !ok {
				ans.Servers[s] = uiServerWorkers{}
			}
		}
	}
	ans.Bus.Connected = redactURL(g.nc.ConnectedUrlRedacted())
	for _, u := range g.nc.DiscoveredServers() {
		ans.Bus.Known = append(ans.Bus.Known, redactURL(u))
	}
	data, _ := json.Marshal(ans)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, data)
}

// gatherStats asks every micro service on the bus for its stats and reads
// the replies until none came for uiClusterQuiet (uiClusterWait at most).
func (g *Ingress) gatherStats(r *http.Request) ([]micro.Stats, error) {
	inbox := g.nc.NewRespInbox()
	sub, err := g.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := g.nc.PublishRequest("$SRV.STATS", inbox, nil); err != nil {
		return nil, err
	}
	var out []micro.Stats
	deadline := time.Now().Add(uiClusterWait)
	for len(out) < uiClusterMax && r.Context().Err() == nil {
		wait := min(uiClusterQuiet, time.Until(deadline))
		if len(out) == 0 {
			wait = time.Until(deadline) // the first reply may take a moment
		}
		if wait <= 0 {
			break
		}
		m, err := sub.NextMsg(wait)
		if err == nats.ErrTimeout {
			break
		}
		if err != nil {
			return out, err
		}
		var st micro.Stats
		if json.Unmarshal(m.Data, &st) == nil && st.Name != "" {
			out = append(out, st)
		}
	}
	return out, nil
}

// redactURL keeps a bus URL's scheme, host and port only.
func redactURL(u string) string {
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			return u[:j+3] + u[i+1:]
		}
	}
	return u
}

// uiNetworkAnswer is GET /ui/api/network's answer.
type uiNetworkAnswer struct {
	InternalRanges []string `json:"internal_ranges"`
	TrustedProxies []string `json:"trusted_proxies"`
	UseXFF         bool     `json:"use_x_forwarded_for"`
	XFFHops        int      `json:"xff_num_trusted_hops"`
	ExternalRoutes []string `json:"external_routes"`
	ServedRoutes   []string `json:"served_routes"`
	// You is how this request was classified.
	You uiClassified `json:"you"`
	// Address is the classification of the ip parameter, if given.
	Address *uiClassified `json:"address,omitempty"`
}

type uiClassified struct {
	Address string `json:"address"`
	Class   string `json:"class"`
	// Range is the internal range it falls in, if any.
	Range string `json:"range,omitempty"`
}

func (g *Ingress) serveUINetwork(w http.ResponseWriter, r *http.Request) {
	if !g.masterOnly(w, r, "the network settings") {
		return
	}
	ans := uiNetworkAnswer{UseXFF: g.xff.enabled, XFFHops: g.xff.hops, InternalRanges: []string{}, TrustedProxies: []string{}}
	for _, p := range g.o.InternalRanges {
		ans.InternalRanges = append(ans.InternalRanges, p.String())
	}
	for _, p := range g.xff.trusted {
		ans.TrustedProxies = append(ans.TrustedProxies, p.String())
	}
	for _, f := range g.routes.external {
		ans.ExternalRoutes = append(ans.ExternalRoutes, string(f))
	}
	served := g.routes.served
	if served == nil {
		served = bus.RouteFamilies
	}
	for _, f := range served {
		ans.ServedRoutes = append(ans.ServedRoutes, string(f))
	}
	addr, ok := g.xff.clientAddr(r)
	ans.You = g.classify(addr, ok)
	if s := strings.TrimSpace(r.URL.Query().Get("ip")); s != "" {
		a, ok := parseXFFEntry(s)
		if !ok {
			writeRESTError(w, bus.Errorf(bus.ErrBadRequest, "ip: %q is not an IPv4 or IPv6 address", bus.Shorten(s, 64)))
			return
		}
		c := g.classify(a, true)
		ans.Address = &c
	}
	data, _ := json.Marshal(ans)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, data)
}

// classify is ipClass's rule for one address, naming the range it matched.
func (g *Ingress) classify(a netip.Addr, ok bool) uiClassified {
	c := uiClassified{Class: string(bus.External)}
	if !ok {
		c.Address = "(none to trust)"
		return c
	}
	c.Address = a.String()
	for _, p := range g.o.InternalRanges {
		if p.Contains(a) {
			c.Class, c.Range = string(bus.Internal), p.String()
			break
		}
	}
	return c
}
