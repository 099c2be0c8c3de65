# randygpt_add_backend(NAME SOURCES...): a backend plugin NAME.so, a MODULE with hidden visibility so
# that only its entry symbol is exported. Used in-tree and, installed, by out-of-tree plugins.
function(randygpt_add_backend name)
  add_library(${name} MODULE ${ARGN})
  set_target_properties(${name} PROPERTIES PREFIX "" OUTPUT_NAME ${name}
                        C_VISIBILITY_PRESET hidden CXX_VISIBILITY_PRESET hidden
                        VISIBILITY_INLINES_HIDDEN ON)
  if(TARGET randygpt::headers)
    target_link_libraries(${name} PRIVATE randygpt::headers)
  else()
    target_link_libraries(${name} PRIVATE randygpt_headers)
  endif()
  target_link_options(${name} PRIVATE -Wl,--no-undefined)
endfunction()

# rg_bundle_backend(NAME): an in-tree plugin, placed in the build tree's plugin folder and installed.
function(rg_bundle_backend name)
  set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${RG_PLUGIN_DIR})
  add_dependencies(rg_plugins ${name})
  set_property(GLOBAL APPEND PROPERTY RG_BUNDLED_BACKENDS ${name}) # the tests skip the others
  install(TARGETS ${name} LIBRARY DESTINATION ${RG_PLUGIN_INSTALL_DIR})
endfunction()
