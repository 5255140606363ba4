"""The Deployment controller package; importing it registers the controller as "deployment".

    controller.py  informers, handlers, syncDeployment, ReplicaSet adoption
    sync.py        new/old ReplicaSets, revisions, proportional scaling, paused sync
    rolling.py     RollingUpdate (maxSurge / maxUnavailable, worked example)
    recreate.py    Recreate
    history.py     pod-template-hash, revisions, revisionHistoryLimit cleanup, rollback
    progress.py    the Progressing condition and progressDeadlineSeconds
    status.py      status counts and the Available condition
    util.py        maxSurge / maxUnavailable resolution, annotations, small helpers

Each file mirrors its namesake in Kubernetes' pkg/controller/deployment.
"""

from controllers.deployment.controller import DeploymentController

__all__ = ["DeploymentController"]
