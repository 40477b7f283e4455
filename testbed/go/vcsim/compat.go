package main

// Fixes for what pyvmomi 9 (and pyVim) cannot use in vcsim v0.56.0. pyvmomi reads attributes such as
// `vm.snapshot` or `vm.runtime` with the Fetch method, so the first and last items break plain attribute access.
//
//   - Fetch of an unset property (vm.snapshot with no snapshots, vm.parentVApp, ...): vcsim answers with a
//     RetrievePropertiesEx response, which pyvmomi cannot parse (AttributeError: objects). vCenter answers with an
//     empty FetchResponse, which pyvmomi returns as None.
//   - WaitForUpdates(Ex) on the default PropertyCollector from several sessions at once: vcsim registers each
//     session's instance as an update listener under the collector's moref, which is the same for all
//     sessions, so the last session to start waiting silently takes the updates away from all the others
//     (pyVim's WaitForTask in one session stalls a watch in another). Each session's instance gets a moref of
//     its own here; listeners of sessions that have ended are dropped.
//   - Task info.name is not the vSphere method name for many vcsim tasks ("PowerVm_Task", "ReconfigVm",
//     "RemoveAllSnapshots"); pyvmomi makes an UnknownManagedMethod of it and pyVim's WaitForTask then fails
//     with AttributeError whenever it sees such a task still running. The name is derived again from
//     info.descriptionId ("VirtualMachine.powerOff" -> PowerOffVM_Task).
//   - runtime.faultToleranceState and runtime.recordReplayState are "" on every VM, which is no value of their
//     enums, so vm.runtime and vm.summary fail to deserialize. vCenter reports notConfigured and inactive.

import (
	"reflect"
	"strings"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// compatPC replaces the PropertyCollector singleton in the registry. vcsim gives every session its own instance of
// the registered type (a zero value, hence the embedding by value), so the fixes apply to all sessions.
type compatPC struct {
	simulator.PropertyCollector
}

type fetchResponse struct {
	Returnval types.AnyType `xml:"returnval,omitempty,typeattr"`
}

type fetchBody struct {
	Res    *fetchResponse `xml:"FetchResponse,omitempty"`
	Fault_ *soap.Fault    `xml:"http://schemas.xmlsoap.org/soap/envelope/ Fault,omitempty"`
}

func (b *fetchBody) Fault() *soap.Fault { return b.Fault_ }

// Fetch takes the request as `any` because its type lives in the simulator's internal package.
func (pc *compatPC) Fetch(ctx *simulator.Context, req any) soap.HasFault {
	out := reflect.ValueOf(&pc.PropertyCollector).MethodByName("Fetch").Call(
		[]reflect.Value{reflect.ValueOf(ctx), reflect.ValueOf(req)})
	res := out[0].Interface().(soap.HasFault)
	if _, unset := res.(*methods.RetrievePropertiesExBody); unset && res.Fault() == nil {
		return &fetchBody{Res: new(fetchResponse)}
	}
	return res
}

func (pc *compatPC) WaitForUpdatesEx(ctx *simulator.Context, req *types.WaitForUpdatesEx) soap.HasFault {
	pc.listenAlone(ctx)
	return pc.PropertyCollector.WaitForUpdatesEx(ctx, req)
}

func (pc *compatPC) WaitForUpdates(ctx *simulator.Context, req *types.WaitForUpdates) soap.HasFault {
	pc.listenAlone(ctx)
	return pc.PropertyCollector.WaitForUpdates(ctx, req)
}

// listeners are the sessions' default PropertyCollectors that have waited for updates, with their session.
var listeners = struct {
	sync.Mutex
	m map[*compatPC]types.UserSession
}{m: map[*compatPC]types.UserSession{}}

// listenAlone gives the session's collector its own moref before vcsim registers it as a listener, and drops
// the listeners of sessions that are gone.
func (pc *compatPC) listenAlone(ctx *simulator.Context) {
	if ctx.Session == nil {
		return // the registry's own instance, used without a session
	}
	listeners.Lock()
	defer listeners.Unlock()
	if _, ok := listeners.m[pc]; ok {
		return
	}
	pc.Self = types.ManagedObjectReference{Type: "PropertyCollector", Value: "propertyCollector-" + ctx.Session.Key}
	listeners.m[pc] = ctx.Session.UserSession
	sm := ctx.Map.SessionManager()
	for other, s := range listeners.m {
		res := sm.SessionIsActive(ctx, &types.SessionIsActive{SessionID: s.Key, UserName: s.UserName})
		if body, ok := res.(*methods.SessionIsActiveBody); ok && body.Res != nil && !body.Res.Returnval {
			ctx.Map.RemoveHandler(&other.PropertyCollector)
			delete(listeners.m, other)
		}
	}
}

// fixups is a registry handler that repairs VMs as they are registered, and installs compatPC.
type fixups struct{}

func (fixups) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "VmsnapFixups", Value: "vmsnap-fixups"}
}

func (fixups) PutObject(_ *simulator.Context, obj mo.Reference) {
	switch o := obj.(type) {
	case *simulator.VirtualMachine:
		fixVM(o)
	case *simulator.Task:
		fixTaskName(o)
	}
}

func (fixups) UpdateObject(*simulator.Context, mo.Reference, []types.PropertyChange) {}
func (fixups) RemoveObject(*simulator.Context, types.ManagedObjectReference)         {}

func fixVM(vm *simulator.VirtualMachine) {
	for _, rt := range []*types.VirtualMachineRuntimeInfo{&vm.Runtime, &vm.Summary.Runtime} {
		if rt.FaultToleranceState == "" {
			rt.FaultToleranceState = types.VirtualMachineFaultToleranceStateNotConfigured
		}
		if rt.RecordReplayState == "" {
			rt.RecordReplayState = types.VirtualMachineRecordReplayStateInactive
		}
	}
}

// fixTaskName sets info.name to the vSphere method that descriptionId names, if there is one; the task is not
// visible to clients yet.
func fixTaskName(t *simulator.Task) {
	_, id, ok := strings.Cut(t.Info.DescriptionId, ".")
	if !ok || id == "" {
		return
	}
	base := strings.ToUpper(id[:1]) + id[1:]
	for _, name := range []string{base + "_Task", base + "VM_Task", strings.TrimSuffix(base, "Vm") + "VM_Task"} {
		if _, known := types.TypeFunc()(name); known { // each method's request type is registered by its name
			t.Info.Name = name
			return
		}
	}
}

func installFixups(reg *simulator.Registry, pcRef types.ManagedObjectReference) {
	for _, e := range reg.All("VirtualMachine") {
		fixVM(e.(*simulator.VirtualMachine))
	}
	reg.AddHandler(fixups{})
	pc := &compatPC{}
	pc.Self = pcRef
	reg.Put(pc)
}
