"""libedgeroute.a: every edgeroute library a target links, in one archive.

The archive is derived from the dependency graph, so a library added to or
split out of a module is packed without anyone editing a list.
"""

def _project_archive_impl(ctx):
    archives = []
    seen = {}
    system_flags = []
    for dep in ctx.attr.deps:
        for linker_input in dep[CcInfo].linking_context.linker_inputs.to_list():
            owner = linker_input.owner
            # Project libraries only: system libraries (//third_party) are
            # linked by the user, as the comment in BUILD.bazel says; their
            # flags go to link_flags_out for pkg-config and CMake.
            if owner.workspace_name != "" or owner.package.startswith("third_party"):
                for flag in linker_input.user_link_flags:
                    if flag not in system_flags:
                        system_flags.append(flag)
                continue
            for flag in linker_input.user_link_flags:
                if flag.startswith("-l") or flag == "-pthread":
                    if flag not in system_flags:
                        system_flags.append(flag)
            for library in linker_input.libraries:
                archive = library.static_library or library.pic_static_library
                if archive != None and archive.path not in seen:
                    seen[archive.path] = True
                    archives.append(archive)
    out = ctx.outputs.out
    script = "create {}\n".format(out.path)
    for archive in archives:
        script += "addlib {}\n".format(archive.path)
    script += "save\nend\n"
    ctx.actions.run_shell(
        inputs = archives,
        outputs = [out],
        command = "printf '%s' \"$1\" | ar -M",
        arguments = [script],
        mnemonic = "EdgerouteArchive",
        progress_message = "Packing %s" % out.short_path,
    )
    outputs = [out]
    if ctx.outputs.link_flags_out:
        # The C++ runtime: the archive holds C++ objects, linked by a C
        # compiler driver in the usual case.
        for flag in ["-lstdc++", "-lm"]:
            if flag not in system_flags:
                system_flags.append(flag)
        ctx.actions.write(ctx.outputs.link_flags_out, " ".join(system_flags) + "\n")
        outputs.append(ctx.outputs.link_flags_out)
    return [DefaultInfo(files = depset(outputs))]

project_archive = rule(
    implementation = _project_archive_impl,
    attrs = {
        "deps": attr.label_list(providers = [CcInfo]),
        "out": attr.output(mandatory = True),
        # Optional: the system libraries the archive needs, as linker flags
        # on one line (pkg-config's Libs.private, CMake's link interface).
        "link_flags_out": attr.output(),
    },
    doc = "One static archive of every project cc_library the deps link.",
)
