// Command vmsnap-vcsim is the test bed's vCenter simulator: govmomi's simulator package (vcsim's engine, used
// only through its public API; govmomi v0.56.0) plus what vcsim does not model, and a small HTTP control API
// for tests. It prints one line per endpoint on stdout and runs until SIGTERM/SIGINT, then deletes its model
// (temp directory):
//
//	VSPHERE_URL=https://user:pass@127.0.0.1:PORT/sdk
//	CONTROL_URL=http://127.0.0.1:PORT
//
// Files: main.go (this launcher), control.go (control API), behaviours.go (how calls reach our code; Tools),
// rules.go (injected faults and delays, and the task runner), snapshot.go (snapshot create/revert/remove),
// layout.go (snapshot files and sizes), compat.go (fixes for what pyvmomi cannot read from vcsim), authz.go
// (privilege checks).
//
// Added on top of vcsim (everything else is upstream):
//
//   - Revert sets the power state recorded in the snapshot tree's `state`: runtime.powerState and
//     summary.runtime.powerState become poweredOn for a memory snapshot of a running VM, poweredOff for a
//     snapshot without memory (state poweredOff: vcsim records that since v0.53), suspended for a snapshot of a
//     suspended VM. suppressPowerOn=True turns poweredOn into suspended, as vSphere does (its client calls the
//     option "Suspend this virtual machine when reverting"). Revert also restores config.extraConfig from the
//     snapshot's config, as vSphere restores the VM's config.
//   - Quiesce needs VMware Tools: CreateSnapshot_Task(quiesce=True) and CreateSnapshotEx_Task(quiesceSpec set) on a
//     poweredOn VM whose guest.toolsRunningStatus is not guestToolsRunning fail as a task with ToolsUnavailable.
//     Tools are not running on any VM at start (as in vcsim) unless -tools-running; POST /tools sets them per VM.
//     `quiesced` in the tree is true only if a running VM was quiesced.
//   - The snapshot does not exist until its task ends; snapshot ids count up per VM from 1.
//   - Snapshot files in layoutEx, with these sizes in bytes (layout.go):
//     <vm>-Snapshot<id>.vmsn          snapshotData    32768, every snapshot
//     <vm>-Snapshot<id>.vmem          snapshotMemory  config.hardware.memoryMB * 1048576, if the snapshot's state
//     is not poweredOff (memory=True on a running or suspended VM); else memoryKey = -1
//     <disk>-<NNNNNN>.vmdk            diskDescriptor  512
//     <disk>-<NNNNNN>-delta.vmdk      diskExtent      16777216
//     Disk chains as in vSphere: a snapshot's chain is the VM's chain when it was taken; the VM then writes to a
//     new delta on top (NNNNNN counts up per VM, shared by its disks). So the first snapshot's chain is the base
//     disk and a later one's ends with the delta its parent started. Revert discards the running delta and starts
//     a new one on the snapshot's chain. Removing snapshots drops their .vmsn/.vmem and every delta no chain
//     uses any more; with no snapshot left the VM is back on its base disks. File keys are never reused.
//     summary.storage: committed = sum of layoutEx file sizes, unshared = sum of .vmdk sizes, uncommitted = disk
//     capacity - unshared. Disks keep capacityInBytes = capacityInKB * 1024 (vcsim sets both).
//   - RemoveSnapshot_Task(removeChildren=True) unregisters the whole subtree and never leaves currentSnapshot
//     dangling; parents' childSnapshot lists are kept; RefreshStorageInfo no longer renumbers layoutEx keys.
//   - Faults and delays injected per method and VM through the control API (rules.go, control.go).
//   - AuthorizationManager.HasPrivilegeOnEntities answers from the roles and permissions set on the simulator
//     (AddAuthorizationRole, UpdateAuthorizationRole, SetEntityPermissions), as vCenter does, for a user some
//     permission names; a user none names holds everything, as in vcsim (authz.go). Only this check reads them.
//   - Logout unregisters the session's views, filters and collectors without holding the session registry's
//     mutex (behaviours.go): vcsim's order deadlocked a Logout with a read through a ContainerView of the same
//     session, and then every task and every read of the VMs those tasks were on.
//   - pyvmomi compatibility (compat.go): unset properties, task names, runtime enums, several sessions waiting.
//
// -stock runs plain vcsim (none of the above; the control API's faults and delays then do nothing).
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmware/govmomi/simulator"
)

func main() {
	log.SetPrefix("vmsnap-vcsim: ")
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	listen := flag.String("l", "127.0.0.1:8989", "vSphere API listen address (port 0 picks a free port)")
	control := flag.String("control", "127.0.0.1:0", "control API listen address")
	username := flag.String("username", "", "login user name (default: any non-empty user is accepted)")
	password := flag.String("password", "", "login password")
	toolsRunning := flag.Bool("tools-running", false, "VMware Tools running on all VMs at start")
	stock := flag.Bool("stock", false, "no added behaviour: plain govmomi simulator (for comparison)")

	model := simulator.VPX()
	flag.IntVar(&model.Datacenter, "dc", model.Datacenter, "number of datacenters")
	flag.IntVar(&model.Cluster, "cluster", model.Cluster, "number of clusters per datacenter")
	flag.IntVar(&model.ClusterHost, "host", model.ClusterHost, "number of hosts per cluster")
	flag.IntVar(&model.Host, "standalone-host", model.Host, "number of standalone hosts per datacenter")
	flag.IntVar(&model.Datastore, "ds", model.Datastore, "number of local datastores")
	flag.IntVar(&model.Machine, "vm", model.Machine, "number of VMs per resource pool")
	flag.Parse()

	if err := model.Create(); err != nil {
		return fmt.Errorf("creating the model: %w", err)
	}
	defer model.Remove() // deletes the model's temp directory (datastore files)

	model.Service.TLS = new(tls.Config)
	model.Service.Listen = &url.URL{Host: *listen}
	if *username != "" || *password != "" {
		model.Service.Listen.User = url.UserPassword(*username, *password)
	}

	ext := newBehaviours(model.Map())
	if !*stock {
		model.Map().Handler = ext.handler
		installFixups(model.Map(), model.ServiceContent.PropertyCollector)
	}
	if *toolsRunning {
		ext.setToolsAll(true)
	}

	ctl, err := serveControl(*control, ext)
	if err != nil {
		return fmt.Errorf("control API on %s: %w", *control, err)
	}
	defer ctl.Close()
	server := model.Service.NewServer() // panics if it cannot listen, like vcsim
	defer server.Close()

	// The test bed reads these two lines to find the endpoints.
	fmt.Printf("VSPHERE_URL=%s\nCONTROL_URL=%s\n", server.URL, ctl.URL)
	_ = os.Stdout.Sync()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	log.Printf("stopping on %v", <-sig)
	return nil
}
