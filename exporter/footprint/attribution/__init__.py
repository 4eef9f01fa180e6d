"""Attribution: which consumers (pods, containers, process groups) used each device, as shares."""
