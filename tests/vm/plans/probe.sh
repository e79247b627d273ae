# Used once to find out whether KVM works here: passes as soon as it runs.
tm_ok 0 "the guest booted"
