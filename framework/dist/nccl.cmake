# NCCL for ssm_dist in CUDA builds (the CUDA backend of the Communicator interface).
# Included by framework/CMakeLists.txt right after the ssm_dist layer:
#   include(${CMAKE_CURRENT_SOURCE_DIR}/dist/nccl.cmake)
# Without NCCL the layer still builds; dist::nccl_compiled() is false and
# dist::nccl_communicator() throws a clear error.
if(NOT SSM_HAVE_CUDA OR NOT TARGET ssm_dist)
  return()
endif()
find_path(SSM_NCCL_INCLUDE nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ENV NCCL_HOME PATH_SUFFIXES include)
find_library(SSM_NCCL_LIB NAMES nccl libnccl.so.2
             HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}/lib ${CUDAToolkit_LIBRARY_ROOT}/lib64
             ENV NCCL_HOME PATH_SUFFIXES lib lib64)
if(SSM_NCCL_INCLUDE AND SSM_NCCL_LIB)
  target_include_directories(ssm_dist PRIVATE ${SSM_NCCL_INCLUDE})
  target_link_libraries(ssm_dist PRIVATE ${SSM_NCCL_LIB})
  target_compile_definitions(ssm_dist PRIVATE SSM_WITH_NCCL=1)
  message(STATUS "ssm: NCCL backend ON (${SSM_NCCL_LIB})")
else()
  message(STATUS "ssm: NCCL not found (nccl.h, libnccl): the dist layer has no CUDA backend")
endif()
