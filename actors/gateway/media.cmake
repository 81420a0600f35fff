# Attachments in the prompt (voice transcripts, image and document notes) and voice replies.
target_sources(gateway PRIVATE ${CMAKE_CURRENT_LIST_DIR}/gw_media.c)
