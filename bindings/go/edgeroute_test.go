package edgeroute_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"edgeroute"
	"edgeroute/internal/cbench"
)

const manifest = `{"schemaVersion": "1.1", "routes": {
  "alerts": "FROM /messages/* WHERE hot = 'yes' INTO $upstream",
  "toFilter": {"route": "FROM /messages/modules/sensor/* INTO BrokeredEndpoint(\"/modules/filter/inputs/in\")", "priority": 0}
}, "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}}`

func TestVersion(t *testing.T) {
	if got := edgeroute.Version(); got != edgeroute.Release {
		t.Fatalf("library %s, package written for %s", got, edgeroute.Release)
	}
	want, err := os.ReadFile("../../VERSION")
	if err == nil && strings.TrimSpace(string(want)) != edgeroute.Release {
		t.Fatalf("VERSION says %s, the package %s", want, edgeroute.Release)
	}
}

func TestCheckRouteErrorHasLineAndColumn(t *testing.T) {
	if _, err := edgeroute.CheckRoute("FROM /messages WHERE a = 'x' INTO $upstream"); err != nil {
		t.Fatalf("valid route: %v", err)
	}
	_, err := edgeroute.CheckRoute("FROM /messages WHERE a = 'x INTO $upstream")
	var e *edgeroute.Error
	if !errors.As(err, &e) || !errors.Is(err, edgeroute.ErrInvalidArgument) {
		t.Fatalf("want an InvalidArgument *Error, got %v", err)
	}
	if e.Line() != 1 || e.Column() <= 0 || len(e.Diagnostics) == 0 {
		t.Fatalf("want line 1 and a column, got %d:%d (%+v)", e.Line(), e.Column(), e.Diagnostics)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("1:%d", e.Column())) {
		t.Fatalf("message without the position: %q", err)
	}
}

func TestCheckManifestPositionsInTheJSON(t *testing.T) {
	bad := "{\"schemaVersion\": \"1.0\", \"routes\": {\n  \"r1\": \"FROM /messages INTO $upstream\",\n  \"r2\": \"FROM /messages WHERE ( INTO $upstream\"\n}}"
	_, err := edgeroute.CheckManifest([]byte(bad))
	var e *edgeroute.Error
	if !errors.As(err, &e) {
		t.Fatalf("want *Error, got %v", err)
	}
	if e.Line() != 3 || e.Diagnostics[0].RouteName != "r2" {
		t.Fatalf("want line 3 of route r2, got %d (%+v)", e.Line(), e.Diagnostics)
	}
	if _, err := edgeroute.NewRouter([]byte(bad), nil); !errors.Is(err, edgeroute.ErrInvalidArgument) {
		t.Fatalf("NewRouter accepted a bad manifest: %v", err)
	}
}

func TestCondition(t *testing.T) {
	c, err := edgeroute.CompileCondition("level = 'critical' AND $connectionModuleId = 'sensor'")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct {
		msg  edgeroute.Message
		want edgeroute.Result
	}{
		{edgeroute.Message{Properties: map[string]string{"level": "critical"},
			SystemProperties: map[string]string{"connectionModuleId": "sensor"}}, edgeroute.True},
		{edgeroute.Message{Properties: map[string]string{"level": "info"},
			SystemProperties: map[string]string{"connectionModuleId": "sensor"}}, edgeroute.False},
		{edgeroute.Message{SystemProperties: map[string]string{"connectionModuleId": "sensor"}}, edgeroute.Undefined},
	} {
		got, err := c.Evaluate(&tc.msg)
		if err != nil || got != tc.want {
			t.Errorf("%+v: got %v, %v; want %v", tc.msg, got, err, tc.want)
		}
	}
	if _, err := edgeroute.CompileCondition("level ="); !errors.Is(err, edgeroute.ErrInvalidArgument) {
		t.Fatalf("bad condition compiled: %v", err)
	}
}

func TestRouterDeliversToGoSinks(t *testing.T) {
	r, err := edgeroute.NewRouter([]byte(manifest), &edgeroute.Options{DeviceID: "gw"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var mu sync.Mutex
	var upstream, filter []edgeroute.Delivery
	if err := r.SetSink("iothub", func(b *edgeroute.Batch) error {
		mu.Lock()
		defer mu.Unlock()
		upstream = append(upstream, b.Messages()...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := r.SetSink("gw/filter/in", func(b *edgeroute.Batch) error {
		if b.Endpoint() != "gw/filter/in" || b.Priority() != 0 {
			return fmt.Errorf("endpoint %q priority %d", b.Endpoint(), b.Priority())
		}
		mu.Lock()
		defer mu.Unlock()
		filter = append(filter, b.Messages()...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		msg := &edgeroute.Message{Body: []byte(fmt.Sprintf(`{"i": %d}`, i)),
			SystemProperties: map[string]string{"connectionModuleId": "sensor"}}
		if i%10 == 0 {
			msg.Properties = map[string]string{"hot": "yes"}
			msg.NullProperties = []string{"note"}
		}
		if err := r.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.WaitIdle(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(upstream) != 10 || len(filter) != 100 {
		t.Fatalf("upstream %d (want 10), filter %d (want 100)", len(upstream), len(filter))
	}
	d := upstream[0]
	if string(d.Body) != `{"i": 0}` || d.Properties["hot"] != "yes" ||
		len(d.NullProperties) != 1 || d.NullProperties[0] != "note" ||
		d.SystemProperties["connectionModuleId"] != "sensor" ||
		d.Source != "/messages/modules/sensor" || len(d.Encoded) == 0 {
		t.Fatalf("delivered message: %+v", d)
	}
	mu.Unlock()
	m, err := r.Metrics()
	if err != nil || m.Received != 100 || m.Delivered != 110 {
		t.Fatalf("metrics %+v, %v", m, err)
	}
	em, err := r.EndpointMetrics("gw/filter/in")
	if err != nil || em.Delivered != 100 || !em.HasSink {
		t.Fatalf("endpoint metrics %+v, %v", em, err)
	}
	if _, err := r.EndpointMetrics("nope"); !errors.Is(err, edgeroute.ErrNotFound) {
		t.Fatalf("unknown endpoint: %v", err)
	}
	text, err := r.PrometheusText()
	if err != nil || !strings.Contains(text, "gw/filter/in") {
		t.Fatalf("prometheus text: %v\n%s", err, text)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Send(&edgeroute.Message{}); !errors.Is(err, edgeroute.ErrFailedPrecondition) {
		t.Fatalf("send after close: %v", err)
	}
}

func TestSinkErrorRetriesAndDeferredAcks(t *testing.T) {
	r, err := edgeroute.NewRouter([]byte(`{"schemaVersion": "1.0", "routes": {"all": "FROM /messages/* INTO $upstream"}}`),
		&edgeroute.Options{RetryInitial: time.Millisecond, RetryMax: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var attempts atomic.Int32
	done := make(chan edgeroute.Delivery, 1)
	r.SetSink("iothub", func(b *edgeroute.Batch) error {
		switch attempts.Add(1) {
		case 1:
			return errors.New("upstream offline") // -> Retry
		case 2:
			panic("a bug in the sink") // recovered -> Retry
		}
		b.Defer()
		go func() { // acknowledged later, from another goroutine
			d, _ := b.Message(0)
			b.AckAll(edgeroute.Delivered)
			done <- d
		}()
		return nil
	})
	if err := r.Send(&edgeroute.Message{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-done:
		if string(d.Body) != "x" || attempts.Load() != 3 {
			t.Fatalf("body %q after %d attempts", d.Body, attempts.Load())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("not delivered after %d attempts", attempts.Load())
	}
	if err := r.WaitIdle(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	m, _ := r.Metrics()
	if m.Retried != 2 || m.Delivered != 1 {
		t.Fatalf("metrics %+v", m)
	}
}

func TestStoreAndForwardAcrossRouters(t *testing.T) {
	dir := t.TempDir()
	all := []byte(`{"schemaVersion": "1.0", "routes": {"all": "FROM /messages/* INTO $upstream"}}`)
	r, err := edgeroute.NewRouter(all, &edgeroute.Options{StoreDirectory: dir})
	if err != nil {
		t.Fatal(err)
	}
	bodies := [][]byte{[]byte("a"), []byte("b"), []byte("c")}
	if n, err := r.SendBodies(&edgeroute.Message{Properties: map[string]string{"k": "v"}}, bodies); err != nil || n != 3 {
		t.Fatalf("SendBodies: %d, %v", n, err)
	}
	if err := r.Close(); err != nil { // no sink: the messages stay stored
		t.Fatal(err)
	}
	r, err = edgeroute.NewRouter(all, &edgeroute.Options{StoreDirectory: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make(chan string, 3)
	r.SetSink("iothub", func(b *edgeroute.Batch) error {
		for _, d := range b.Messages() {
			got <- string(d.Body) + d.Properties["k"]
		}
		return nil
	})
	var seen []string
	for len(seen) < 3 {
		select {
		case s := <-got:
			seen = append(seen, s)
		case <-time.After(30 * time.Second):
			t.Fatalf("recovered %v of 3", seen)
		}
	}
	if strings.Join(seen, ",") != "av,bv,cv" {
		t.Fatalf("recovered %v", seen)
	}
}

func TestConcurrentSends(t *testing.T) {
	r, err := edgeroute.NewRouter([]byte(`{"schemaVersion": "1.0", "routes": {"all": "FROM /messages/* INTO $upstream"}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	var delivered atomic.Int64
	r.SetSink("iothub", func(b *edgeroute.Batch) error { delivered.Add(int64(b.Len())); return nil })
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				if err := r.Send(&edgeroute.Message{Body: []byte{byte(g)}}); err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	if err := r.Close(); err != nil || delivered.Load() != 2000 {
		t.Fatalf("delivered %d of 2000, close: %v", delivered.Load(), err)
	}
}

// The C example's manifest and messages (bindings/c/example.c).
const exampleManifest = `{"schemaVersion": "1.0", "routes": {"alerts": "FROM /messages/* WHERE hot = 'yes' INTO $upstream"}}`

// BenchmarkSendGo sends the C example's messages through the Go binding.
func BenchmarkSendGo(b *testing.B) {
	r, err := edgeroute.NewRouter([]byte(exampleManifest), nil)
	if err != nil {
		b.Fatal(err)
	}
	r.SetSink("iothub", func(*edgeroute.Batch) error { return nil })
	hot := &edgeroute.Message{Body: []byte(`{"t": 21.5}`), Properties: map[string]string{"hot": "yes"}}
	cold := &edgeroute.Message{Body: []byte(`{"t": 21.5}`)}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		m := cold
		if i%10 == 0 {
			m = hot
		}
		if err := r.Send(m); err != nil {
			b.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
}

// BenchmarkSendBodiesGo sends batches of 256 bodies with shared properties.
func BenchmarkSendBodiesGo(b *testing.B) {
	r, err := edgeroute.NewRouter([]byte(exampleManifest), nil)
	if err != nil {
		b.Fatal(err)
	}
	r.SetSink("iothub", func(*edgeroute.Batch) error { return nil })
	proto := &edgeroute.Message{Properties: map[string]string{"hot": "yes"}}
	bodies := make([][]byte, 256)
	for i := range bodies {
		bodies[i] = []byte(`{"t": 21.5}`)
	}
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; sent += len(bodies) {
		n := len(bodies)
		if b.N-sent < n {
			n = b.N - sent
		}
		if _, err := r.SendBodies(proto, bodies[:n]); err != nil {
			b.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
}

// BenchmarkSendC is the same loop in C (bindings/c/example.c's), in the
// same run, for comparison.
func BenchmarkSendC(b *testing.B) {
	start := time.Now()
	if failed := cbench.Send(exampleManifest, b.N); failed != 0 {
		b.Fatalf("%d sends failed", failed)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
}

func TestUpdateRoutesAndSendEncoded(t *testing.T) {
	r, err := edgeroute.NewRouter([]byte(`{"schemaVersion": "1.0", "routes": {"none": "FROM /messages/* WHERE false INTO $upstream"}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make(chan edgeroute.Delivery, 4)
	r.SetSink("iothub", func(b *edgeroute.Batch) error {
		for _, d := range b.Messages() {
			got <- d
		}
		return nil
	})
	err = r.UpdateRoutes([]byte("{\"schemaVersion\": \"1.0\",\n \"routes\": {\"bad\": \"FROM /messages INTO\"}}"))
	var e *edgeroute.Error
	if !errors.As(err, &e) || e.Line() != 2 {
		t.Fatalf("bad update: %v", err)
	}
	if err := r.UpdateRoutes([]byte(`{"schemaVersion": "1.0", "routes": {"all": "FROM /messages/* INTO $upstream"}}`)); err != nil {
		t.Fatal(err)
	}
	if err := r.Send(&edgeroute.Message{Body: []byte("once"), Properties: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	first := <-got
	if err := r.SendEncoded(first.Encoded); err != nil { // the same message again
		t.Fatal(err)
	}
	again := <-got
	if string(again.Body) != "once" || again.Properties["k"] != "v" {
		t.Fatalf("re-sent message: %+v", again)
	}
	if err := r.SendEncoded([]byte("not a message")); !errors.Is(err, edgeroute.ErrInvalidArgument) {
		t.Fatalf("garbage accepted: %v", err)
	}
	if m, _ := r.Metrics(); m.RouteUpdates != 1 {
		t.Fatalf("route updates %d", m.RouteUpdates)
	}
}
