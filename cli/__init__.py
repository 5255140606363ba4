"""The `tinykube` command: tinykube's kubectl.

One module per verb group, named after kubectl's own packages so a reader can
put them side by side:

    main.py        the click group, global flags, `apiserver` and `version`
    config.py      where the API server is (flag > env > config file > default)
    context.py     one asyncio.run per command, the Client, error -> exit code
    inputs.py      `-f FILE|DIR|-` walking and `KIND NAME` / `kind/name` parsing
    cmd_apply.py   apply, create, delete        (kubectl/pkg/cmd/{apply,create,delete})
    cmd_get.py     get, describe, api-resources (kubectl/pkg/cmd/{get,describe})
    printers.py    tables, -o name/yaml/json    (k8s.io/cli-runtime/pkg/printers)
    columns.py     the per-kind table columns  (kubernetes/pkg/printers/internalversion)
    cells.py       ages, times, labels, selectors; Column (what columns and pages share)
    tabwriter.py   Go's text/tabwriter (elastic tabstops), which kubectl aligns with
    describe.py    `describe`: gathering, dispatch, the generic page (kubectl/pkg/describe)
    describers.py  the Pod, Deployment, ReplicaSet, Service, Node, Endpoints pages
    describe_sections.py  the Writer and the sections every page shares

The CLI talks to the API server only through `apimachinery.client.Client`,
exactly as kubectl talks only through client-go.
"""
