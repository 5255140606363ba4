"""The CNI plugin's errors: each one is a CNI error code, printed as the spec's JSON.

A CNI plugin reports failure by printing an error object on stdout and exiting
non-zero; the runtime (containerd's CRI plugin, or our kubelet for Docker)
reads `code` to decide what to do and shows `msg` / `details` to the user:

    {"cniVersion": "1.0.0", "code": 3,
     "msg": "network namespace /run/netns/cni-1234 does not exist",
     "details": "CNI_NETNS names a path that is not there: the sandbox is gone"}

Codes 1-99 are the spec's well-known ones; 100 and up are this plugin's own.

    CNIError (code 999: an unexpected failure)
    ├── IncompatibleVersion   1   cniVersion the plugin does not speak
    ├── ContainerUnknown      3   CNI_NETNS does not exist (ADD, CHECK)
    ├── InvalidEnvironment    4   a CNI_* variable is missing or malformed
    ├── IOFailure             5   stdin unreadable, IPAM directory unwritable
    ├── DecodeFailure         6   stdin is not a JSON object
    ├── InvalidConfig         7   a config field is missing or wrong (named in msg)
    ├── TryAgainLater        11   the IPAM lock was not obtained in time
    ├── AddressesExhausted  100   no free address left in the subnet
    ├── CheckFailed         101   CHECK found the pod's interface not as ADD left it
    └── KernelError         102   netlink refused a change (message carries errno text)
"""

from __future__ import annotations

from typing import Any


class CNIError(Exception):
    """A failure the plugin reports as a CNI error object."""

    code = 999

    def __init__(self, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details

    def to_json(self, cni_version: str) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


class IncompatibleVersion(CNIError):
    code = 1


class ContainerUnknown(CNIError):
    code = 3


class InvalidEnvironment(CNIError):
    code = 4


class IOFailure(CNIError):
    code = 5


class DecodeFailure(CNIError):
    code = 6


class InvalidConfig(CNIError, ValueError):
    code = 7


class TryAgainLater(CNIError):
    code = 11


class AddressesExhausted(CNIError):
    code = 100


class CheckFailed(CNIError):
    code = 101


class KernelError(CNIError):
    code = 102
