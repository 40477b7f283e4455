package main

// The control API: JSON over HTTP on its own loopback port, for tests to set up what a scenario needs.
//
//	GET    /healthz                                   {"ok": true}
//	GET    /vms                                       {"DC0_H0_VM0": "vm-57", ...}
//	POST   /tools  {"vm": V, "running": true}         Tools running/not running ("*" = every VM)
//	POST   /faults {"method": M, "vm": V, "fault": F, "message": "...", "count": 1}
//	POST   /delays {"method": M, "vm": V, "seconds": 2.5, "count": 0}
//	POST   /release {"method": M, "vm": V}            {"released": N}: the tasks held by a delay now start their work
//	GET    /rules                                     {"faults": [...], "delays": [...]}
//	DELETE /faults, /delays, /rules                   clear faults, delays, or both
//
// V is a VM name or moref value, or "*"; M one of the methods in rules.go's `interceptable`; F a vSphere fault
// type name; count N applies to the next N calls, 0 (the default) to all. Errors: 4xx with {"error": "..."}.

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

type controlServer struct {
	*http.Server
	URL string
}

func serveControl(addr string, b *behaviours) (*controlServer, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { reply(w, 200, map[string]bool{"ok": true}) })
	mux.HandleFunc("GET /vms", b.listVMs)
	mux.HandleFunc("POST /tools", b.postTools)
	mux.HandleFunc("POST /faults", func(w http.ResponseWriter, r *http.Request) { b.postRule(w, r, &b.rules.faults) })
	mux.HandleFunc("POST /delays", func(w http.ResponseWriter, r *http.Request) { b.postRule(w, r, &b.rules.delays) })
	mux.HandleFunc("POST /release", b.postRelease)
	mux.HandleFunc("GET /rules", func(w http.ResponseWriter, r *http.Request) {
		faults, delays := b.rules.snapshot()
		reply(w, 200, map[string][]rule{"faults": faults, "delays": delays})
	})
	clear := func(lists ...*[]*rule) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			for _, l := range lists {
				b.rules.clear(l)
			}
			reply(w, 200, map[string]bool{"ok": true})
		}
	}
	mux.HandleFunc("DELETE /faults", clear(&b.rules.faults))
	mux.HandleFunc("DELETE /delays", clear(&b.rules.delays))
	mux.HandleFunc("DELETE /rules", clear(&b.rules.faults, &b.rules.delays))

	s := &controlServer{Server: &http.Server{Handler: mux}, URL: "http://" + l.Addr().String()}
	go func() { _ = s.Serve(l) }()
	return s, nil
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, format string, args ...any) {
	reply(w, code, map[string]string{"error": fmt.Sprintf(format, args...)})
}

func (b *behaviours) listVMs(w http.ResponseWriter, r *http.Request) {
	vms := map[string]string{}
	for _, e := range b.reg.All("VirtualMachine") {
		vm := e.(*simulator.VirtualMachine)
		vms[vm.Name] = vm.Self.Value
	}
	reply(w, 200, vms)
}

func (b *behaviours) postTools(w http.ResponseWriter, r *http.Request) {
	var req struct {
		VM      string `json:"vm"`
		Running *bool  `json:"running"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Running == nil {
		fail(w, 400, `want {"vm": name|moref|"*", "running": bool}`)
		return
	}
	if req.VM == "*" {
		b.setToolsAll(*req.Running)
	} else if vm := b.findVM(req.VM); vm != nil {
		b.setTools(vm, *req.Running)
	} else {
		fail(w, 404, "no VM %q", req.VM)
		return
	}
	reply(w, 200, req)
}

// decodeTarget reads a request naming an interceptable method and a VM ("*": any), the VM resolved to its moref;
// false when it has answered the request with the error.
func (b *behaviours) decodeTarget(w http.ResponseWriter, r *http.Request, rl *rule) bool {
	if err := json.NewDecoder(r.Body).Decode(rl); err != nil {
		fail(w, 400, "bad JSON: %v", err)
		return false
	}
	if !interceptable[rl.Method] {
		fail(w, 400, "method %q cannot be intercepted (one of %v)", rl.Method, keys(interceptable))
		return false
	}
	if rl.VM != "*" {
		vm := b.findVM(rl.VM)
		if vm == nil {
			fail(w, 404, "no VM %q", rl.VM)
			return false
		}
		rl.VM = vm.Self.Value
	}
	return true
}

func (b *behaviours) postRule(w http.ResponseWriter, r *http.Request, list *[]*rule) {
	var rl rule
	if !b.decodeTarget(w, r, &rl) {
		return
	}
	if rl.Count < 0 {
		fail(w, 400, "count must be >= 0 (0 = always)")
		return
	}
	if list == &b.rules.faults {
		if _, err := newFault(rl.Fault, rl.Message, nil, types.ManagedObjectReference{}); err != nil {
			fail(w, 400, "%v", err)
			return
		}
	} else if rl.Seconds <= 0 {
		fail(w, 400, "seconds must be > 0")
		return
	}
	b.rules.add(list, &rl)
	reply(w, 201, rl)
}

func (b *behaviours) postRelease(w http.ResponseWriter, r *http.Request) {
	var rl rule
	if !b.decodeTarget(w, r, &rl) {
		return
	}
	reply(w, 200, map[string]int{"released": b.rules.release(rl.Method, rl.VM)})
}

func keys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }
