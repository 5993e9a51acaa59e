# Install rules and the Debian packages (CPack DEB), one package per component:
#
#   component  package            what
#   broker     lienthongd         sbin/lienthongd, its systemd unit, lienthongd(8), broker.yaml(5),
#                                 an example broker.yaml for the packaged layout
#   cli        lienthong          bin/lienthong, lienthong(1)
#   lib        liblienthong1      liblienthong.so.1 (the shared library)
#   dev        liblienthong-dev   headers (include/lienthong/), liblienthong.a, liblienthong.so,
#                                 liblienthong.pc
#
# The broker and the CLI link liblienthong statically (as the tests do), so they do not depend
# on liblienthong1; dpkg-shlibdeps derives every package's runtime Depends from the ELF files.
#
#   cmake -S . -B build-deb -DCMAKE_INSTALL_PREFIX=/usr && cmake --build build-deb -j2
#   (cd build-deb && cpack -G DEB)            # -> build-deb/*.deb
include(GNUInstallDirs)

install(TARGETS lienthongd RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR} COMPONENT broker)
install(TARGETS lienthong_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT cli)
install(TARGETS lienthong_shared
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT lib NAMELINK_COMPONENT dev)
install(TARGETS lienthong ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
# Every lib/*.h is the library's contract. They include each other with "name.h", so they
# live together in one directory: #include <lienthong/envelope.h>.
file(GLOB LT_PUBLIC_HEADERS ${CMAKE_SOURCE_DIR}/lib/*.h)
list(FILTER LT_PUBLIC_HEADERS EXCLUDE REGEX "_int\\.h$") # a module's internals (STYLE.md)
install(FILES ${LT_PUBLIC_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/lienthong
        COMPONENT dev)
# The .pc finds its prefix from its own place (${pcfiledir}), so it stays right wherever the
# tree is installed (cmake --install --prefix, CPack's staging, a dpkg --instdir root).
file(RELATIVE_PATH LT_PC_TO_PREFIX /P/${CMAKE_INSTALL_LIBDIR}/pkgconfig /P)
configure_file(${CMAKE_SOURCE_DIR}/cmake/liblienthong.pc.in
               ${CMAKE_BINARY_DIR}/liblienthong.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/liblienthong.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)

# The unit names the installed binary and config by absolute path: build the packages with
# -DCMAKE_INSTALL_PREFIX=/usr (units then go to /usr/lib/systemd/system, the config to
# /etc/lienthong). With the default /usr/local they go to /usr/local/lib/systemd/system,
# which systemd reads too, and /usr/local/etc/lienthong.
configure_file(${CMAKE_SOURCE_DIR}/ops/systemd/lienthongd.service.in
               ${CMAKE_BINARY_DIR}/lienthongd.service @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/lienthongd.service
        DESTINATION lib/systemd/system COMPONENT broker)
install(FILES ${CMAKE_SOURCE_DIR}/ops/systemd/broker.yaml
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/lienthongd/examples COMPONENT broker)

# ---- CPack: Debian packages ----
set(CPACK_PACKAGE_NAME lienthong)
set(CPACK_PACKAGE_VENDOR "lienthong")
set(CPACK_PACKAGE_CONTACT "lienthong maintainers <maintainers@lienthong.invalid>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "data-exchange gateway for government (signed records)")
# Packages hold what `cmake --install` would put under CMAKE_INSTALL_PREFIX (see above).
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_GENERATOR DEB)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL broker cli lib dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)

set(CPACK_DEBIAN_BROKER_PACKAGE_NAME lienthongd)
set(CPACK_COMPONENT_BROKER_DESCRIPTION
    "lienthong broker\n lienthongd verifies signed envelopes against the trust root, stores them\n in LMDB and routes them to durable queues. Runs under systemd (lienthongd.service).")
set(CPACK_DEBIAN_BROKER_PACKAGE_SECTION net)

set(CPACK_DEBIAN_CLI_PACKAGE_NAME lienthong)
set(CPACK_COMPONENT_CLI_DESCRIPTION
    "lienthong command-line tool\n Publish, consume, verify and administer records of a lienthong broker;\n legacy-file adapters and database sinks; dev-init for a development setup.")
set(CPACK_DEBIAN_CLI_PACKAGE_SECTION net)

set(CPACK_DEBIAN_LIB_PACKAGE_NAME liblienthong1)
set(CPACK_COMPONENT_LIB_DESCRIPTION
    "lienthong client library\n Build, sign and verify lienthong envelopes; talk to a lienthong broker.")
set(CPACK_DEBIAN_LIB_PACKAGE_SECTION libs)
# A shlibs file (packages built against it depend on liblienthong1) and the ldconfig trigger
# (cmake/deb/triggers) that refreshes the linker cache when it is installed or removed.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
set(CPACK_DEBIAN_LIB_PACKAGE_CONTROL_EXTRA ${CMAKE_SOURCE_DIR}/cmake/deb/triggers)

set(CPACK_DEBIAN_DEV_PACKAGE_NAME liblienthong-dev)
set(CPACK_COMPONENT_DEV_DESCRIPTION
    "lienthong client library: development files\n Headers, the static library and liblienthong.pc.")
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
# Nothing ELF that dpkg-shlibdeps could read (liblienthong.so is a symlink): the headers and
# liblienthong.pc need these.
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "liblienthong1 (= ${PROJECT_VERSION}-1), libprotobuf-c-dev, libjson-c-dev, libzmq3-dev, libssl-dev, libyaml-dev")

include(CPack)
