# ssm_layer(NAME DIR <dir> [SOURCES ...] [DEPS ...])
#
# One static library per layer of DESIGN.md. Headers are included rooted
# ("framework/core/tensor.h"), but a target only sees the directories of the
# layers it links: each layer exposes a private include root in the build tree
# that holds a single link to its own folder. An upward include therefore fails
# to compile instead of silently creating a cycle.
function(ssm_layer name)
  cmake_parse_arguments(L "" "DIR" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  set(root ${CMAKE_BINARY_DIR}/include_roots/${name})
  get_filename_component(parent ${root}/${L_DIR} DIRECTORY)
  file(MAKE_DIRECTORY ${parent})
  if(NOT EXISTS ${root}/${L_DIR})
    file(CREATE_LINK ${CMAKE_SOURCE_DIR}/${L_DIR} ${root}/${L_DIR} SYMBOLIC)
  endif()
  if(L_SOURCES)
    add_library(${name} STATIC ${L_SOURCES})
    target_include_directories(${name} PUBLIC ${root})
    target_link_libraries(${name} PUBLIC ${L_DEPS} PRIVATE ${L_PRIVATE_DEPS})
  else()
    add_library(${name} INTERFACE)
    target_include_directories(${name} INTERFACE ${root})
    target_link_libraries(${name} INTERFACE ${L_DEPS})
  endif()
endfunction()
