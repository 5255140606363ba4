"""Security in the API server: who is asking (authentication), what they may do (authorization).

authorizer.py     the shared types: UserInfo, Attributes, Decision, the union
                  of authorizers, Kubernetes' Forbidden sentence
authenticator.py  client certificates, bearer tokens, the local unix socket
node.py           the Node authorizer: a kubelet reaches only its own node's things
rbac.py           RBAC: Roles, ClusterRoles and their bindings
"""
