package main

// Injected faults and delays, and the task runner that applies them.
//
// A rule names a SOAP method and a VM (moref value, or "*" for every VM). It is consumed when the method is
// invoked: count N applies to the next N calls, count 0 to every call until DELETE /faults or /delays.
// A delay keeps the task `running`, with info.progress rising from 0 to 99, for that many seconds before the
// work starts; a fault makes the task end in error with that vSphere fault instead of doing the work
// (after the delay, if both apply). The work itself runs under the VM's lock, the delay does not, so reads,
// WaitForUpdatesEx and calls on other objects go on while a task is held. A held task is cancelable:
// CancelTask during the delay ends it with RequestCanceled and the work is not done. POST /release ends the delay
// of the tasks held now (of a method on a VM) at once: a test holds a task as long as its scenario needs, not for
// a guessed time.

import (
	"context"
	"fmt"
	"log"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// interceptable lists the methods rules may name; all are VM tasks run by runTask (see behaviours.go).
var interceptable = map[string]bool{
	"CreateSnapshot_Task": true, "CreateSnapshotEx_Task": true,
	"RevertToSnapshot_Task": true, "RevertToCurrentSnapshot_Task": true,
	"RemoveSnapshot_Task": true, "RemoveAllSnapshots_Task": true,
	"ReconfigVM_Task": true,
}

type rule struct {
	Method  string  `json:"method"`
	VM      string  `json:"vm"` // moref value or "*"
	Fault   string  `json:"fault,omitempty"`
	Message string  `json:"message,omitempty"`
	Seconds float64 `json:"seconds,omitempty"`
	Count   int     `json:"count"` // calls left; 0 = always
}

type ruleSet struct {
	mu     sync.Mutex
	faults []*rule
	delays []*rule
	held   map[*heldTask]struct{} // tasks in their delay now
}

// heldTask is a task in its delay: POST /release sets released, and hold lets the task's work start.
type heldTask struct {
	method, vm string
	released   atomic.Bool
}

func (s *ruleSet) hold(method, vm string) *heldTask {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := &heldTask{method: method, vm: vm}
	if s.held == nil {
		s.held = map[*heldTask]struct{}{}
	}
	s.held[h] = struct{}{}
	return h
}

func (s *ruleSet) unhold(h *heldTask) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held, h)
}

// release ends the delay of every task of method on vm ("*": any VM) held now; returns how many.
func (s *ruleSet) release(method, vm string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for h := range s.held {
		if h.method == method && (vm == "*" || h.vm == vm) && !h.released.Swap(true) {
			n++
		}
	}
	return n
}

// take consumes the first rule in list matching method and vm.
func (s *ruleSet) take(list *[]*rule, method, vm string) *rule {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range *list {
		if r.Method != method || (r.VM != "*" && r.VM != vm) {
			continue
		}
		taken := *r
		if r.Count > 0 {
			if r.Count--; r.Count == 0 {
				*list = append((*list)[:i], (*list)[i+1:]...)
			}
		}
		return &taken
	}
	return nil
}

// match reports whether a fault or delay rule names method and vm.
func (s *ruleSet) match(method, vm string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range append(s.faults[:len(s.faults):len(s.faults)], s.delays...) {
		if r.Method == method && (r.VM == "*" || r.VM == vm) {
			return true
		}
	}
	return false
}

func (s *ruleSet) add(list *[]*rule, r *rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	*list = append(*list, r)
}

func (s *ruleSet) clear(list *[]*rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	*list = nil
}

func (s *ruleSet) snapshot() (faults, delays []rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	faults, delays = []rule{}, []rule{} // JSON [] rather than null
	for _, r := range s.faults {
		faults = append(faults, *r)
	}
	for _, r := range s.delays {
		delays = append(delays, *r)
	}
	return faults, delays
}

// newFault builds the named vSphere fault (any fault type of the vim25 API: ToolsUnavailable, InvalidPowerState,
// NotFound, GenericVmConfigFault, SystemError, TaskInProgress, ...), filling the fields pyvmomi's callers read.
func newFault(name, message string, vm *simulator.VirtualMachine, task types.ManagedObjectReference) (types.BaseMethodFault, error) {
	t, ok := types.TypeFunc()(name)
	if !ok {
		return nil, fmt.Errorf("unknown fault type %q", name)
	}
	fault, ok := reflect.New(t).Interface().(types.BaseMethodFault)
	if !ok {
		return nil, fmt.Errorf("%q is not a fault type", name)
	}
	switch f := fault.(type) {
	case *types.InvalidPowerState:
		if vm != nil {
			f.ExistingState = vm.Runtime.PowerState
		}
	case *types.TaskInProgress:
		f.Task = task
	case *types.SystemError:
		f.Reason = message
	case *types.GenericVmConfigFault:
		f.Reason = message
	}
	return fault, nil
}

// faultMessage is the task's error.localizedMessage: the given text, or one like vSphere's.
func faultMessage(fault types.BaseMethodFault, given string) string {
	if given != "" {
		return given
	}
	switch fault.(type) {
	case *types.ToolsUnavailable:
		return "Cannot complete operation because VMware Tools is not running in this virtual machine."
	case *types.NotFound:
		return "The object or item referred to could not be found."
	}
	return reflect.TypeOf(fault).Elem().Name()
}

type taskWork func(ctx *simulator.Context) (types.AnyType, types.BaseMethodFault)

// runTask starts a task for method on vm and returns its moref at once, like vcsim's Task.Run, but applies the
// rules first and takes the VM lock only for work.
func (b *behaviours) runTask(ctx *simulator.Context, vm *simulator.VirtualMachine, method string, work taskWork) types.ManagedObjectReference {
	fault := b.rules.take(&b.rules.faults, method, vm.Self.Value)
	delay := b.rules.take(&b.rules.delays, method, vm.Self.Value)

	// "createSnapshotTask" gives info.name CreateSnapshot_Task and descriptionId VirtualMachine.createSnapshot.
	id := strings.TrimSuffix(method, "_Task")
	task := simulator.CreateTask(vm, strings.ToLower(id[:1])+id[1:]+"Task", nil)
	// Put assigns the moref and adds the task to the VM's recentTask. It runs every ContainerView's PutObject,
	// which takes that view's lock, with the VM's held, as vcsim's own tasks do: the simulator's lock order is a
	// VM, then a view, then the session registry (see sessionMethods.Logout in behaviours.go).
	ctx.WithLock(vm, func() { ctx.Map.Put(task) })
	ctx.Map.AtomicUpdate(ctx, task, []types.PropertyChange{
		{Name: "info.key", Val: task.Self.Value},
		{Name: "info.task", Val: task.Self},
		{Name: "info.startTime", Val: time.Now()},
		{Name: "info.state", Val: types.TaskInfoStateRunning},
		{Name: "info.cancelable", Val: delay != nil},
	})

	// The work outlives this SOAP call; a context of its own keeps its lock ownership apart from the call's.
	bg := *ctx
	bg.Context = context.Background()
	go func() {
		if delay != nil {
			held := b.rules.hold(method, vm.Self.Value)
			ok := hold(&bg, task, time.Duration(delay.Seconds*float64(time.Second)), &held.released)
			b.rules.unhold(held)
			if !ok {
				return // cancelled; CancelTask has completed the task
			}
		}
		var res types.AnyType
		var err types.BaseMethodFault
		msg := ""
		bg.WithLock(vm, func() {
			defer func() { // a bug here must fail one task, not hold the VM's lock or stop the simulator
				if r := recover(); r != nil {
					log.Printf("%s on %s panicked: %v\n%s", method, vm.Self.Value, r, debug.Stack())
					res, err = nil, &types.SystemError{Reason: fmt.Sprintf("vmsnap-vcsim: %v", r)}
				}
			}()
			if fault != nil {
				msg = fault.Message
				err, _ = newFault(fault.Fault, msg, vm, task.Self) // the name was checked when the rule was added
			} else {
				res, err = work(&bg)
			}
		})
		finish(&bg, task, res, err, msg)
	}()
	return task.Self
}

// hold keeps the task running for d, or until released, raising info.progress so clients see it is alive; false
// if it was cancelled meanwhile.
func hold(ctx *simulator.Context, task *simulator.Task, d time.Duration, released *atomic.Bool) bool {
	const step = 100 * time.Millisecond
	start := time.Now()
	for elapsed := time.Duration(0); elapsed < d && !released.Load(); elapsed = time.Since(start) {
		cancelled := false
		ctx.WithLock(task, func() {
			if cancelled = task.Info.Cancelled; !cancelled {
				ctx.Update(task, []types.PropertyChange{{Name: "info.progress", Val: int32(1 + 98*elapsed/d)}})
			}
		})
		if cancelled {
			return false
		}
		time.Sleep(min(step, d-elapsed))
	}
	ok := true
	ctx.WithLock(task, func() {
		if ok = !task.Info.Cancelled; ok {
			ctx.Update(task, []types.PropertyChange{{Name: "info.cancelable", Val: false}})
		}
	})
	return ok
}

func finish(ctx *simulator.Context, task *simulator.Task, res types.AnyType, err types.BaseMethodFault, msg string) {
	changes := []types.PropertyChange{{Name: "info.completeTime", Val: time.Now()}}
	if err != nil {
		changes = append(changes,
			types.PropertyChange{Name: "info.error", Val: &types.LocalizedMethodFault{Fault: err, LocalizedMessage: faultMessage(err, msg)}},
			types.PropertyChange{Name: "info.state", Val: types.TaskInfoStateError})
	} else {
		changes = append(changes,
			types.PropertyChange{Name: "info.progress", Val: int32(100)},
			types.PropertyChange{Name: "info.result", Val: res},
			types.PropertyChange{Name: "info.state", Val: types.TaskInfoStateSuccess})
	}
	ctx.Map.AtomicUpdate(ctx, task, changes)
}
