# Discovery: libvirt domains, their disks mapped to host block devices, tap counters.
DOMXML_SRCS := probes/domxml.c
BLOCKDEV_SRCS := probes/blockdev.c
NETLINK_SRCS := probes/netlink.c
LIBVIRT_SRCS := probes/libvirt.c $(DOMXML_SRCS) $(BLOCKDEV_SRCS)
DISCOVERY_SRCS := $(LIBVIRT_SRCS) $(NETLINK_SRCS)

$(eval $(call unit_test,test_blockdev,tests/unit/test_blockdev.c $(BLOCKDEV_SRCS) $(COMMON_SRCS)))
$(eval $(call unit_test,test_domxml,tests/unit/test_domxml.c $(LIBVIRT_SRCS) $(COMMON_SRCS)))
$(eval $(call unit_test,test_netlink,tests/unit/test_netlink.c $(NETLINK_SRCS) $(COMMON_SRCS)))
