"""The Deployment controller package; importing it registers the controller as "deployment".

    controller.py  informers, handlers, syncDeployment, claiming ReplicaSets (../claim.py)
    context.py     SyncContext: what the helpers below need from the controller
    sync.py        new/old ReplicaSets, revisions, proportional scaling, paused sync
    rolling.py     RollingUpdate (maxSurge / maxUnavailable, worked example)
    recreate.py    Recreate
    history.py     pod-template-hash, revisions, revisionHistoryLimit cleanup, rollback
    progress.py    the Progressing condition and progressDeadlineSeconds
    status.py      status counts and the Available condition
    util.py        maxSurge / maxUnavailable resolution, annotations, small helpers

Each file mirrors its namesake in Kubernetes' pkg/controller/deployment. The
helpers import one another and context.py, never controller.py: only this
__init__ imports the controller (which registers it), so the package has no
import circle. Inside the package, modules import each other as
`import controllers.deployment.sync as sync` -- the module, not the package,
whose __init__ is what imports the controller.
"""

from controllers.deployment.controller import DeploymentController

__all__ = ["DeploymentController"]
