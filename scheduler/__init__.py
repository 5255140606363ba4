"""tinykube's scheduler (kube-scheduler): place each pending Pod on a Node, and say why.

Modules, in the order a pod meets them:

    types.py         PodInfo / NodeInfo: objects digested once into the numbers plugins read
    snapshot.py      the Cache of NodeInfos (incremental, with assumed pods) and its Snapshot
    queue.py         activeQ / backoffQ / unschedulable pods, and the events that move them
    framework.py     extension points, Status/Code, CycleState, weights and normalisation
    plugins/         NodeUnschedulable, NodeName, TaintToleration, NodeAffinity,
                     NodeResourcesFit, PodTopologySpread, NodeResourcesLeastAllocated,
                     NodeResourcesBalancedAllocation, SelectorSpread
    schedule_one.py  one decision: filter with adaptive sampling, score, pick, FitError
    record.py        the placement record written into the pod's annotations
    scheduler.py     the informers, the loop, binding in the background, Events
    explain.py       re-run the decision for one pod on today's state (explain-placement)
"""
