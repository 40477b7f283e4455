"""bench.compare reads the figures it compares from bench.overhead's printed report."""

from __future__ import annotations

from bench.compare import figures

REPORT = """\
## CR change → final condition, vs the same vCenter task called directly
operation (n=30)  product ms  direct pyvmomi ms  overhead ms
----------------  ----------  -----------------  -----------
create p50               382                 11          371
create p95               465                 29          436
revert p50               305                 11          293
delete p50               287                 10          277

## processes over the measured run (/proc)
process                             CPU s  mean %core  peak %core (1 s)  peak RSS MB  anon MB  file MB
worker                               21.0          22                57          165      124       41
temporal                             22.8          24                40          228      137       92

## CPU per operation (/proc/<pid>/stat before and after each phase; 10 ms ticks, summed)
CPU ms per operation                              create  revert  delete
------------------------------------------------  ------  ------  ------
temporal                                             157     145     139
worker                                               154     136     111
kube-apiserver                                       146     143      96
**sum (temporal + worker + bridge + apiserver)**     471     432     353

## Requests per operation (the servers' own counters; kube includes the user's change and the CSI stand-in)
requests per operation                     create  revert  delete
-----------------------------------------  ------  ------  ------
kube LIST virtualmachinesnapshots             2.1     2.1     2.1
**kube: all**                                18.4    12.5     7.5
temporal (internal, all)                     37.7    33.6    31.9
**temporal: all**                            55.2    49.1    46.1
"""


def test_each_figure_is_read_per_kind_from_its_own_section():
    found = figures(REPORT)

    assert found["create: CPU ms/op, sum"] == 471 and found["delete: CPU ms/op, sum"] == 353
    assert found["revert: CPU ms/op, temporal"] == 145  # not the processes table's, not the RPC table's
    assert found["create: CPU ms/op, worker"] == 154
    assert found["delete: kube requests/op"] == 7.5 and found["revert: Temporal RPCs/op"] == 49.1
    assert (found["create: overhead p50 ms"], found["revert: overhead p50 ms"]) == (371, 293)
    assert "create: overhead p95 ms" not in found
    assert len(found) == 3 * 7
